"""Test doubles for the services forge talks to (Slack's Web API, response_url, Socket Mode)."""
