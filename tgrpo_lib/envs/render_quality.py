"""Render quality: ``fast`` draws simplified copies of the visual meshes, physics untouched.

LIBERO scenes carry ~0.3-1M mesh triangles and Mesa llvmpipe (software GL) is geometry-bound,
so a 128 px frame costs as much as a 224 px one (~60-80 ms). ``fast`` mode:

- swaps every mesh asset that only *visual* geoms use (group != 0, contype = conaffinity = 0)
  for a quadric-decimated copy, keeping per-corner texture coordinates and normals so textures
  and shading survive. Collision meshes are never touched, and the models compile with
  ``inertiagrouprange="0 0"`` (visual geoms carry no mass), so the simulation is bit-identical;
- turns off multisampling (``offsamples=0``).

Decimated meshes are built once per source file and kept in ``CACHE_DIR / "fast_meshes"``,
keyed by the file's path, mtime, size, the kept-face ratio and ``MESH_FORMAT_VERSION``;
a file lock plus an atomic rename make it safe for several worker processes to fill the cache
at the same time. The rewrite is installed as robosuite's XML processor, so hard resets
(``EnvConfig.hard_reset=True``) rebuild the fast model too.
"""
from __future__ import annotations

import fcntl
import functools
import hashlib
import multiprocessing
import os
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import tgrpo_lib

MESH_FORMAT_VERSION = 3  # bump when decimation or the written format changes: part of every cache key


@dataclass(frozen=True)
class FastRenderConfig:
    """How far ``fast`` mode simplifies visual meshes (defaults measured on the 4 suites)."""

    object_ratio: float = 0.1
    """Fraction of faces kept for the objects' visual meshes (scanned objects: 15-70k faces).
    0.1 is ~10% faster per step than 0.2 (the margin that makes ``fast`` >= 4x ``standard``)
    and keeps every suite within 5/255 (libero_10: 4.5 mean, 4.8 max; its box labels blur)."""
    robot_ratio: float = 0.2
    """Fraction kept for robosuite's robot, gripper and mount meshes: large and bright in the
    agentview camera, so shading errors there cost more pixels than on the objects."""
    scene_ratio: float = 1.0
    """Fraction kept for room/furniture meshes (``assets/scenes/``); 1 draws them as shipped.
    They are large open sheets: decimated even to 25%, libero_10's dark living-room backdrop
    loses faces and shows the sky through it (mean pixel error 9/255)."""
    min_faces: int = 2000
    """Meshes with fewer faces are drawn as shipped: too small to matter, easy to damage."""
    offsamples: int = 0
    """Multisample anti-aliasing samples of the offscreen buffer (LIBERO ships 4)."""

    def __post_init__(self) -> None:
        for name in ("object_ratio", "robot_ratio", "scene_ratio"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{name}={value}: pass a fraction of faces to keep in (0, 1].")

    def ratio_for(self, mesh_file: str) -> float:
        path = mesh_file.replace(os.sep, "/")
        if "/robosuite/" in path:
            return self.robot_ratio
        return self.scene_ratio if "/scenes/" in path else self.object_ratio


# ---------------------------------------------------------------------------- mesh data
@dataclass
class Mesh:
    """Triangle mesh as MuJoCo reads it: shared positions, attributes per face corner."""

    vertices: np.ndarray  # (V, 3) float
    faces: np.ndarray  # (F, 3) int, indices into vertices
    texcoords: np.ndarray | None = None  # (F, 3, 2) per corner, MuJoCo convention (v as in .msh)
    normals: np.ndarray | None = None  # (F, 3, 3) per corner


def read_mesh(path: str | os.PathLike) -> Mesh:
    """Read a mesh file the way MuJoCo does (``.msh``, ``.obj``, binary/ASCII ``.stl``)."""
    path = str(path)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".msh":
        return _read_msh(path)
    if ext == ".obj":
        return _read_obj(path)
    if ext == ".stl":
        return _read_stl(path)
    raise ValueError(f"Cannot simplify mesh {path!r}: only .msh, .obj and .stl files are supported.")


def _read_msh(path: str) -> Mesh:
    # MuJoCo's legacy binary format: 4 int32 counts, then float32 arrays and int32 faces
    raw = Path(path).read_bytes()
    nv, nn, nt, nf = (int(x) for x in np.frombuffer(raw, np.int32, 4))
    offset = 16
    arrays = []
    for count, dtype in ((3 * nv, np.float32), (3 * nn, np.float32), (2 * nt, np.float32), (3 * nf, np.int32)):
        arrays.append(np.frombuffer(raw, dtype, count, offset))
        offset += 4 * count
    if offset != len(raw):
        raise ValueError(f"{path}: not a MuJoCo .msh file (size {len(raw)} != {offset} from its header).")
    vertices, normals, texcoords, faces = arrays
    vertices, faces = vertices.reshape(-1, 3), faces.reshape(-1, 3)
    # .msh attributes are per vertex; MuJoCo ignores them when the counts differ
    normals = normals.reshape(-1, 3)[faces] if nn == nv and nn else None
    texcoords = texcoords.reshape(-1, 2)[faces] if nt == nv and nt else None
    return Mesh(vertices.astype(np.float64), faces.astype(np.int64), texcoords, normals)


def _read_obj(path: str) -> Mesh:
    verts, uvs, norms, corners = [], [], [], []  # corners: (v, vt, vn) 1-based or 0 when absent
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            head, _, rest = line.partition(" ")
            if head == "v":
                verts.append(rest.split()[:3])
            elif head == "vt":
                uvs.append((rest.split() + ["0"])[:2])
            elif head == "vn":
                norms.append(rest.split()[:3])
            elif head == "f":
                poly = []
                for token in rest.split():
                    parts = (token.split("/") + ["", ""])[:3]
                    poly.append([int(p) if p else 0 for p in parts])
                for k in range(1, len(poly) - 1):  # fan-triangulate polygons, as tinyobjloader does
                    corners.append((poly[0], poly[k], poly[k + 1]))
    v = np.asarray(verts, dtype=np.float64).reshape(-1, 3)
    c = np.asarray(corners, dtype=np.int64).reshape(-1, 3, 3)  # (F, corner, v/vt/vn)
    for j, size in enumerate((len(v), len(uvs), len(norms))):  # OBJ indices: 1-based, negative = from end
        c[..., j] = np.where(c[..., j] < 0, c[..., j] + size, c[..., j] - 1)
    texcoords = normals = None
    if uvs and (c[..., 1] >= 0).all():
        t = np.asarray(uvs, dtype=np.float64)
        t[:, 1] = 1.0 - t[:, 1]  # MuJoCo flips v when it reads OBJ files
        texcoords = t[c[..., 1]]
    if norms and (c[..., 2] >= 0).all():
        normals = np.asarray(norms, dtype=np.float64)[c[..., 2]]
    return Mesh(v, c[..., 0], texcoords, normals)


def _read_stl(path: str) -> Mesh:
    raw = Path(path).read_bytes()
    n = int(np.frombuffer(raw, np.uint32, 1, 80)[0]) if len(raw) >= 84 else -1
    if len(raw) == 84 + 50 * n:  # binary: 12 float32 (normal, 3 vertices) + 2 bytes per triangle
        rec = np.frombuffer(raw, np.dtype([("n", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")]), n, 84)
        tri = rec["v"].astype(np.float64)
    else:
        words = raw.decode("ascii", errors="replace").split()
        idx = [i for i, w in enumerate(words) if w == "vertex"]
        tri = np.array([[float(words[i + 1]), float(words[i + 2]), float(words[i + 3])] for i in idx]).reshape(-1, 3, 3)
    return Mesh(tri.reshape(-1, 3), np.arange(3 * len(tri), dtype=np.int64).reshape(-1, 3))


def write_obj(mesh: Mesh, path: str | os.PathLike) -> None:
    """Write ``mesh`` as OBJ with per-corner ``vt``/``vn`` (undoing MuJoCo's v flip on read)."""
    lines = ["# decimated by tgrpo_lib.envs.render_quality (visual only)"]
    lines += [f"v {x:.7g} {y:.7g} {z:.7g}" for x, y, z in mesh.vertices]
    n_faces = len(mesh.faces)
    corner = np.arange(1, 3 * n_faces + 1).reshape(n_faces, 3)
    v = mesh.faces + 1
    if mesh.texcoords is not None:
        lines += [f"vt {u:.7g} {1.0 - w:.7g}" for u, w in mesh.texcoords.reshape(-1, 2)]
    if mesh.normals is not None:
        lines += [f"vn {x:.6g} {y:.6g} {z:.6g}" for x, y, z in mesh.normals.reshape(-1, 3)]
    has_t, has_n = mesh.texcoords is not None, mesh.normals is not None
    for fv, fc in zip(v, corner):
        if has_t and has_n:
            lines.append("f " + " ".join(f"{a}/{b}/{b}" for a, b in zip(fv, fc)))
        elif has_t:
            lines.append("f " + " ".join(f"{a}/{b}" for a, b in zip(fv, fc)))
        elif has_n:
            lines.append("f " + " ".join(f"{a}//{b}" for a, b in zip(fv, fc)))
        else:
            lines.append(f"f {fv[0]} {fv[1]} {fv[2]}")
    Path(path).write_text("\n".join(lines) + "\n")


def decimate(mesh: Mesh, ratio: float) -> Mesh:
    """Quadric edge-collapse ``mesh`` down to ~``ratio`` of its faces, textures kept.

    Positions are welded first (files store one vertex per face corner, which would leave the
    simplifier nothing to collapse). Edge collapses only delete faces and move vertices, so
    every surviving face is an original face: it keeps that face's per-corner texcoords and
    normals. (Re-picking each moved corner's attributes from its new vertex was tried: larger
    pixel error on the 4 suites.)
    """
    import fast_simplification  # deferred: only a cold mesh cache needs it

    welded, inverse = np.unique(mesh.vertices, axis=0, return_inverse=True)
    faces = inverse.reshape(-1)[mesh.faces]  # (F, 3) welded vertex ids
    target = max(4, int(round(ratio * len(faces))))
    if target >= len(faces):
        return mesh
    points, _, collapses = fast_simplification.simplify(
        welded, faces.astype(np.int32), target_count=target, return_collapses=True
    )
    parent = np.arange(len(welded))
    if len(collapses):
        parent[collapses[:, 1]] = collapses[:, 0]  # collapses[i] = (kept, removed)
    while True:  # follow chains of collapses to their surviving vertex
        nxt = parent[parent]
        if np.array_equal(nxt, parent):
            break
        parent = nxt
    mapped = parent[faces]  # (F, 3)
    alive = (mapped[:, 0] != mapped[:, 1]) & (mapped[:, 1] != mapped[:, 2]) & (mapped[:, 0] != mapped[:, 2])
    survivors = np.unique(mapped[alive])  # the simplifier keeps surviving vertices in index order
    if len(survivors) != len(points):
        raise RuntimeError(f"fast-simplification kept {len(points)} vertices, its collapse log says {len(survivors)}.")
    index = np.full(len(welded), -1, dtype=np.int64)
    index[survivors] = np.arange(len(survivors))
    return Mesh(
        vertices=points,
        faces=index[mapped[alive]],
        texcoords=None if mesh.texcoords is None else mesh.texcoords[alive],
        normals=None if mesh.normals is None else mesh.normals[alive],
    )


# ---------------------------------------------------------------------------- cache
def cache_dir() -> Path:
    return Path(tgrpo_lib.CACHE_DIR) / "fast_meshes"


def cached_mesh_path(source: str | os.PathLike, ratio: float) -> Path:
    """Where the decimated copy of ``source`` lives (whether or not it is built yet)."""
    source = os.path.abspath(os.fspath(source))
    st = os.stat(source)
    key = f"{source}|{st.st_mtime_ns}|{st.st_size}|{ratio:.6f}|v{MESH_FORMAT_VERSION}"
    return cache_dir() / f"{Path(source).stem}-{hashlib.sha1(key.encode()).hexdigest()[:16]}.obj"


def fast_mesh_path(source: str | os.PathLike, ratio: float) -> Path:
    """Path of the decimated copy of ``source``, built on first use (safe across processes)."""
    out = cached_mesh_path(source, ratio)
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be building the same file
        if not out.exists():
            mesh = decimate(read_mesh(source), ratio)
            fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=out.stem, suffix=".tmp")
            os.close(fd)
            try:
                write_obj(mesh, tmp)
                os.replace(tmp, out)  # atomic: readers see the old state or the whole file
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
    return out


# ---------------------------------------------------------------------------- model rewrite
def visual_only_meshes(model, min_faces: int = 0) -> frozenset[str]:
    """Names of meshes (>= ``min_faces``) drawn only by geoms that never collide (group != 0,
    contype = conaffinity = 0); ``model`` is a compiled ``mujoco.MjModel`` or robosuite's wrapper
    of one (``sim.model``). Meshes no geom uses count too (some scenes declare unused backdrops)."""
    import mujoco  # deferred (~0.13 s): importing the env layer must not load the simulator

    unsafe = set()
    for g in range(model.ngeom):
        if model.geom_type[g] != mujoco.mjtGeom.mjGEOM_MESH:
            continue
        if model.geom_group[g] == 0 or model.geom_contype[g] or model.geom_conaffinity[g]:
            unsafe.add(int(model.geom_dataid[g]))
    names = model.names  # every name, NUL-separated; name_meshadr points at each mesh's
    return frozenset(
        names[model.name_meshadr[m]:].split(b"\0", 1)[0].decode()
        for m in range(model.nmesh)
        if m not in unsafe and model.mesh_facenum[m] >= min_faces
    )


SCENE_WORKER_ENV = "TGRPO_SCENE_WORKER"
"""Set to 1 in GroupEngine's worker processes (started with subprocess, not multiprocessing)."""


def in_scene_worker() -> bool:
    """Whether this process builds scenes for a parent that shows its own progress bar (GroupEngine's
    workers, the expert recorder's pool): there a second bar would interleave with the parent's."""
    return multiprocessing.parent_process() is not None or os.environ.get(SCENE_WORKER_ENV) == "1"


def fast_model_xml(xml: str, meshes: frozenset[str], cfg: FastRenderConfig = FastRenderConfig()) -> str:
    """Point the mesh assets named in ``meshes`` at decimated copies; switch MSAA off."""
    root = ET.fromstring(xml)
    asset = root.find("asset")
    todo = [m for m in (asset.findall("mesh") if asset is not None else []) if m.get("name") in meshes and m.get("file")]
    jobs = [(elem, elem.get("file"), cfg.ratio_for(elem.get("file"))) for elem in todo]
    jobs = [job for job in jobs if job[2] < 1.0]
    missing = sum(not cached_mesh_path(src, ratio).exists() for _, src, ratio in jobs)
    if missing >= 3 and not in_scene_worker():  # a cold cache takes a few seconds per scene: show it
        from tqdm.auto import tqdm  # deferred: needed only on a cold cache

        jobs = tqdm(jobs, desc=f"simplifying {missing} visual meshes", leave=False)
    for elem, src, ratio in jobs:
        elem.set("file", str(fast_mesh_path(src, ratio)))
    visual = root.find("visual")
    if visual is None:
        visual = ET.SubElement(root, "visual")
    quality = visual.find("quality")
    if quality is None:
        quality = ET.SubElement(visual, "quality")
    quality.set("offsamples", str(cfg.offsamples))
    return ET.tostring(root, encoding="unicode")


def prepare_env(env, quality: str, cfg: FastRenderConfig = FastRenderConfig()) -> None:
    """Rebuild a freshly constructed LIBERO env (``OffScreenRenderEnv``) for ``quality``.

    ``fast`` recompiles the model once from the rewritten XML and installs the rewrite as the
    XML processor, so hard resets keep it; model sizes (nq, nv, bodies, geoms) are unchanged,
    so the suites' flattened init states load as before. ``standard`` leaves the env as shipped.
    """
    if quality == "standard":
        return
    if quality != "fast":
        raise ValueError(f"render_quality={quality!r}: pass 'standard' or 'fast'.")
    inner = env.env
    meshes = visual_only_meshes(inner.sim.model, cfg.min_faces)
    inner.set_xml_processor(functools.partial(fast_model_xml, meshes=meshes, cfg=cfg))
    inner.reset_from_xml_string(inner.model.get_xml())
