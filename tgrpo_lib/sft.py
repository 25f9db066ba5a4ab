"""``python -m tgrpo_lib.sft``, kept working (now ``python -m tgrpo_lib sft``): the command lives in
``tgrpo_lib.training.sft``."""
from tgrpo_lib.training.sft import main

if __name__ == "__main__":
    main()
