"""``python -m tgrpo_lib.reproduce``, kept working (now ``python -m tgrpo_lib reproduce``): the command lives in
``tgrpo_lib.workflows.reproduce``."""
from tgrpo_lib.workflows.reproduce import main

if __name__ == "__main__":
    main()
