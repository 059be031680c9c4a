"""`WebhookServer`: the webhook receiver on uvicorn in a background thread (tests, flows, CLI)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from starlette.routing import BaseRoute

from callerid.clock import Clock
from callerid.inbox.db import session_scope
from callerid.inbox.webhook import DEFAULT_PATH, create_webhook_app
from callerid.inbox.webhook_auth import Credentials
from callerid.serving import ServerLimits, ThreadedUvicorn


class WebhookServer(ThreadedUvicorn):
    """Receives Plivo inbound-SMS webhooks into the ledger's inbox table.

    `ledger` is a ledger URL, a `Ledger`, an Engine or a sessionmaker. `public_url` is the URL
    Plivo is configured to call (a tunnel or proxy in front of us); signatures are checked against
    it. Without one, the server's own address plus `/plivo/sms` is the public URL. `.url` is the
    public URL: the one to give Plivo (or the sandbox's `inbox_url`). `routes` are served next to
    the webhook (e.g. the owners' code page); `limits` are the server's deadlines and caps.
    """

    def __init__(
        self,
        ledger: Any,
        account: str,
        tokens: Mapping[str, str],
        main_token: str,
        public_url: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        allow_v2: bool = False,
        clock: Clock | None = None,
        limits: ServerLimits | None = None,
        routes: Sequence[BaseRoute] = (),
    ) -> None:
        if public_url is not None and urlsplit(public_url).scheme not in ("http", "https"):
            raise ValueError("public_url must be an http(s) URL")
        self.account = account
        # Bind first: the default public URL needs the port, known only once the socket is bound.
        super().__init__(
            None, host=host, port=port, limits=limits, log_names=("callerid.inbox.webhook",)
        )
        self._public_url = public_url or f"http://{host}:{self.port}{DEFAULT_PATH}"
        scope = session_scope(ledger)
        self.app = create_webhook_app(
            scope,
            account,
            Credentials(dict(tokens), main_token),
            self._public_url,
            allow_v2=allow_v2,
            clock=clock,
            routes=routes,
        )
        # The owners' code page (callerid.people) is served next to the webhook.
        from callerid.people.page import CodePage, add_code_page  # people imports the inbox

        secure = self._public_url.startswith("https://")
        self.code_page = CodePage(scope, account, clock=clock, secure_cookie=secure)
        add_code_page(self.app, self.code_page)
        self._config.app = self.app

    @property
    def listen_url(self) -> str:
        """Where the server listens (may differ from the public URL behind a proxy)."""
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return self._public_url

    @property
    def code_page_base(self) -> str:
        """The base of the code page's links: the public URL without the webhook's path."""
        from callerid.people.page import code_page_base

        return code_page_base(self._public_url)

    def __repr__(self) -> str:
        return f"WebhookServer(account={self.account!r}, url={self.url!r})"

    def __enter__(self) -> WebhookServer:
        self.start()
        return self
