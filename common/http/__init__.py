"""HTTP side shared by the functions: the app factory and error format, parameters, tokens, URLs,
request logs and metrics."""
