"""herd's command line (click): the only layer that may import every other package."""
