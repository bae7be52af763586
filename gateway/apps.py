from django.apps import AppConfig
from django.core.signals import setting_changed


class GatewayConfig(AppConfig):
    name = "gateway"

    def ready(self) -> None:
        from gateway import conf, keys

        setting_changed.connect(conf.reset, dispatch_uid="gateway.conf.reset")
        setting_changed.connect(keys.reset, dispatch_uid="gateway.keys.reset")
