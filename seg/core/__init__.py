"""What every room builds on: the user-facing errors and how they are shown (:mod:`.errors`), and how
files are written, whole and with the umask's mode (:mod:`.files`). Imports neither torch nor Hydra."""
