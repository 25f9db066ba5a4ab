"""``python -m tgrpo_lib.main``, kept working (now ``python -m tgrpo_lib run``): the command lives in
``tgrpo_lib.workflows.main``."""
from tgrpo_lib.workflows.main import main

if __name__ == "__main__":
    main()
