"""The exit codes of `chorus`, one meaning each; a command that waits on an execution exits by its final state."""

EXIT_OK = 0  #: done (for a command that waits: the execution ended SUCCESS or SKIPPED)
EXIT_INVALID = 1  #: `flow validate` found an invalid flow, or `audit verify` a broken chain
EXIT_USAGE = 2  #: bad arguments or settings
EXIT_FAILURE = 3  #: a server or dependency failed, or refused the request
EXIT_EXECUTION_FAILED = 4  #: the execution ended FAILED
EXIT_EXECUTION_KILLED = 5  #: the execution was KILLED or CANCELLED
EXIT_EXECUTION_WARNING = 6  #: the execution ended in WARNING (it finished, with task runs in warning)
EXIT_EXECUTION_PAUSED = 7  #: `--wait` returned while the execution waits for a person (resume it)
