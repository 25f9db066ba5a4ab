"""``python -m tgrpo_lib.plan``, kept working (now ``python -m tgrpo_lib plan``): the command lives in
``tgrpo_lib.paper_scale.plan``."""
from tgrpo_lib.paper_scale.plan import main

if __name__ == "__main__":
    main()
