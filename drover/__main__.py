from drover.cli.main import app

app(prog_name="drover")
