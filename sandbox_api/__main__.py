import gc

gc.disable()  # until the daemon listens (app.serve): collections during start-up find nothing

from .cli import main  # noqa: E402

main()
