"""The one-command demo: embedded broker, backdoored model, live traffic, live view."""
