"""``uvicorn opa.main:app`` serves the app configured by the environment and settings folder."""

from opa.app import create_app

app = create_app()
