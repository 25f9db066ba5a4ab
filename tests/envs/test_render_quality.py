"""render_quality="fast": simplified visual meshes, same physics, close images."""
from __future__ import annotations

import numpy as np
import pytest

import tgrpo_lib
from tgrpo_lib.envs import render_quality as rq


def _grid(n: int = 40) -> rq.Mesh:
    """A flat n x n quad grid on z=0 over [0,1]^2, stored per corner like a .msh file, uv = xy."""
    xs = np.linspace(0.0, 1.0, n + 1)
    vid = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    verts = np.stack(np.meshgrid(xs, xs, indexing="ij"), -1).reshape(-1, 2)
    quads = np.stack([vid[:-1, :-1], vid[1:, :-1], vid[1:, 1:], vid[:-1, 1:]], -1).reshape(-1, 4)
    tris = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])  # (2 n^2, 3)
    corners = verts[tris.reshape(-1)]  # unwelded, one vertex per corner
    positions = np.concatenate([corners, np.zeros((len(corners), 1))], 1)
    faces = np.arange(len(corners)).reshape(-1, 3)
    normals = np.tile([0.0, 0.0, 1.0], (len(faces), 3, 1))
    return rq.Mesh(positions, faces, texcoords=corners.reshape(-1, 3, 2), normals=normals)


def test_decimate_hits_ratio_and_keeps_surface_and_texcoords():
    mesh = _grid(40)  # 3200 faces
    out = rq.decimate(mesh, 0.1)
    assert 280 <= len(out.faces) <= 340  # ~10% of 3200
    assert np.abs(out.vertices[:, 2]).max() < 1e-9  # a plane stays a plane
    assert out.vertices.min() >= -1e-9 and out.vertices.max() <= 1 + 1e-9  # borders kept
    # each surviving corner keeps the texcoord of an original corner near where it now sits
    pos = out.vertices[out.faces][..., :2]  # (F, 3, 2)
    assert np.abs(out.texcoords - pos).max() < 0.35
    assert np.allclose(out.normals[..., 2], 1.0)


def test_obj_written_for_mujoco_has_the_msh_texcoords(tmp_path):
    """MuJoCo flips v when it reads OBJ (not .msh): the written file must undo that."""
    mujoco = pytest.importorskip("mujoco")
    mesh = rq.decimate(_grid(8), 0.5)
    path = tmp_path / "m.obj"
    rq.write_obj(mesh, path)
    back = rq.read_mesh(path)
    np.testing.assert_allclose(back.texcoords, mesh.texcoords, atol=1e-6)
    model = mujoco.MjModel.from_xml_string(
        f'<mujoco><asset><mesh name="m" file="{path}" inertia="shell"/></asset><worldbody><body>'
        f'<inertial pos="0 0 0" mass="1" diaginertia="1 1 1"/>'
        f'<geom type="mesh" mesh="m" contype="0" conaffinity="0" group="1"/></body></worldbody></mujoco>'
    )
    uv = model.mesh_texcoord.reshape(-1, 2)[model.mesh_facetexcoord.reshape(-1)]  # per corner, as compiled
    np.testing.assert_allclose(uv.reshape(-1, 3, 2), mesh.texcoords, atol=1e-6)


def test_cache_key_and_reuse(tmp_path, monkeypatch):
    monkeypatch.setattr(tgrpo_lib, "CACHE_DIR", tmp_path / "cache")
    src = tmp_path / "grid.obj"
    rq.write_obj(_grid(20), src)
    first = rq.fast_mesh_path(src, 0.2)
    assert first.parent == tmp_path / "cache" / "fast_meshes"
    built_at = first.stat().st_mtime_ns
    assert rq.fast_mesh_path(src, 0.2) == first and first.stat().st_mtime_ns == built_at  # reused
    assert rq.fast_mesh_path(src, 0.5) != first  # the ratio is part of the key
    assert len(rq.read_mesh(first).faces) < len(rq.read_mesh(rq.fast_mesh_path(src, 0.5)).faces)
    assert not list(first.parent.glob("*.tmp"))  # atomic writes leave no partial files


def test_config_rejects_bad_ratio():
    with pytest.raises(ValueError, match="object_ratio"):
        rq.FastRenderConfig(object_ratio=0.0)


@pytest.mark.sim
def test_fast_mode_same_physics_close_images():
    from libero.libero import benchmark

    from tgrpo_lib.envs.config import EnvConfig
    from tgrpo_lib.envs.core import make_env

    init_state = benchmark.get_benchmark_dict()["libero_object"]().get_task_init_states(0)[0]
    actions = np.random.default_rng(0).uniform(-1, 1, (40, 7))
    frames, states, sizes = {}, {}, {}
    for quality in ("standard", "fast"):
        env = make_env("object", 0, EnvConfig(render_quality=quality))
        seq = [env.reset(init_state)["agentview"]]
        seq += [env.step(a)[0]["agentview"] for a in actions]
        frames[quality] = np.stack(seq).astype(np.float64)  # (41, 128, 128, 3)
        states[quality] = env.get_sim_state()
        m = env.sim.model
        drawn = m.geom_dataid[(m.geom_type == 7) & (m.geom_group == 1)]  # meshes of visual geoms
        sizes[quality] = (m.nq, m.nv, m.nbody, m.ngeom, int(m.mesh_facenum[drawn].sum()))
        env.close()
    assert np.array_equal(states["standard"], states["fast"])  # bit-identical physics
    assert sizes["standard"][:4] == sizes["fast"][:4]
    assert sizes["fast"][4] < 0.35 * sizes["standard"][4]  # drawn triangles: ~322k -> ~90k
    mad = np.abs(frames["standard"] - frames["fast"]).mean(axis=(1, 2, 3))
    assert mad.max() <= 5.0, mad  # measured ~2.8/255 on this task


@pytest.mark.sim
def test_hard_reset_keeps_fast_meshes():
    from libero.libero import benchmark

    from tgrpo_lib.envs.config import EnvConfig
    from tgrpo_lib.envs.core import make_env

    init_state = benchmark.get_benchmark_dict()["libero_object"]().get_task_init_states(0)[1]
    env = make_env("object", 0, EnvConfig(render_quality="fast", hard_reset=True))
    try:
        faces = env.sim.model.nmeshface
        obs = env.reset(init_state)  # reloads the model from XML: the processor must run again
        assert env.sim.model.nmeshface == faces < 200_000  # shipped: 382,917 (60k of them an unused backdrop)
        assert env.sim.model.vis.quality.offsamples == 0
        assert obs["agentview"].shape == (128, 128, 3) and obs["agentview"].std() > 10
    finally:
        env.close()


def _in_scene_worker(_=None) -> bool:
    return rq.in_scene_worker()


def test_scene_workers_draw_no_mesh_progress_bar(monkeypatch):
    """Worker processes (multiprocessing children, GroupEngine's workers flagged by env var) leave
    the cold-cache bar to their parent, whose own bar is on screen; the main process shows it."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    monkeypatch.delenv(rq.SCENE_WORKER_ENV, raising=False)
    assert not rq.in_scene_worker()
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        assert pool.submit(_in_scene_worker).result() is True
    monkeypatch.setenv(rq.SCENE_WORKER_ENV, "1")
    assert rq.in_scene_worker()

