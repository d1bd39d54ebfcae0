"""Alert rules the worker evaluates on Garrison's own metrics, and error tracking."""
