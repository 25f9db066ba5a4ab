"""``python -m tgrpo_lib.parity``, kept working (now ``python -m tgrpo_lib parity``): the command lives in
``tgrpo_lib.paper_scale.parity``."""
from tgrpo_lib.paper_scale.parity import main

if __name__ == "__main__":
    main()
