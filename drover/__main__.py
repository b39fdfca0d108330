from drover import parent_watch

parent_watch.arm()

from drover.cli.main import app  # noqa: E402  (armed first: a service dies with its starter)

app(prog_name="drover")
