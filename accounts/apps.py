from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Members and trading accounts"

    def ready(self) -> None:
        from django.db.models.signals import post_save, pre_save

        from accounts import tokens
        from accounts.models import User

        # a password change or a deactivation revokes the user's refresh tokens
        pre_save.connect(tokens._remember_credentials, sender=User,
                         dispatch_uid="accounts.tokens.remember")
        post_save.connect(tokens._revoke_after_save, sender=User,
                          dispatch_uid="accounts.tokens.revoke")
