"""``python -m tgrpo_lib.diagnose``, kept working (now ``python -m tgrpo_lib diagnose``): the command lives in
``tgrpo_lib.workflows.diagnose``."""
from tgrpo_lib.workflows.diagnose import main

if __name__ == "__main__":
    main()
