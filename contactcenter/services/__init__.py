"""Units of work, called alike by HTTP handlers, jobs and the command line."""
