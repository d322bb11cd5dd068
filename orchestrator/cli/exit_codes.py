"""The exit codes of `chorus`, one meaning each (commands that wait on an execution add theirs in `follow`)."""

EXIT_OK = 0
EXIT_INVALID = 1  #: `flow validate` found an invalid flow, or `audit verify` a broken chain
EXIT_USAGE = 2  #: bad arguments or settings
EXIT_FAILURE = 3  #: a server or dependency failed
