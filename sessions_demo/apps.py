from django.apps import AppConfig


class SessionsDemoConfig(AppConfig):
    name = "sessions_demo"
