"""Chat listeners only: the /kpi command, buttons, App Home. Each listener is a plain function;
``register(app, ...)`` wires them. Services are passed in; nothing here imports ``bot``."""
