from event_manager.cli import app

app(prog_name="event-manager")
