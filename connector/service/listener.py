"""The service's HTTP listener: `/healthz`, `/readyz`, `/metrics` and the providers' webhooks.

- `/healthz`: the process is alive (200).
- `/readyz`: the database answers and no unit has been failing longer than the threshold
  (200, else 503 with the reasons as JSON).
- `/metrics`: Prometheus exposition.
- `POST /webhooks/stripe|xero|hubspot[/CONNECTION]`: verified with the connection's
  `webhook_secret` (constant-time compare), stored once by event id, answered at once (Xero
  wants an answer within 5 s, with no body), and the affected streams are pulled right away
  (incrementally, from their cursors).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from connector import webhooks
from connector.service.loop import Service
from connector.state import units as work

logger = logging.getLogger("connector.service")


class Listener:
    def __init__(
        self,
        service: Service,
        host: str,
        port: int,
        *,
        failing_threshold: timedelta = timedelta(minutes=30),
        public_url: str | None = None,
    ) -> None:
        self.service = service
        self.failing_threshold = failing_threshold
        # The public URL is joined with the request's path ("/webhooks/..."): a trailing slash
        # would sign "...//webhooks/hubspot", which HubSpot never called.
        self.public_url = public_url.rstrip("/") if public_url else None
        listener = self

        class Handler(_Handler):
            owner = listener

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="listener", daemon=True)

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        assert isinstance(host, str)  # getsockname() of an AF_INET(6) socket gives the host as str
        return f"http://{host}:{port}"

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # checks -----------------------------------------------------------------------------------

    def readiness(self) -> tuple[bool, list[str]]:
        problems = []
        try:
            self.service.store.ping()
            with self.service.store.session() as session:
                rows = work.units(session)
        except Exception as exc:  # any database failure means not ready
            return False, [f"database unreachable: {type(exc).__name__}"]
        limit = datetime.now(UTC) - self.failing_threshold
        for row in rows:
            since = row.get("failing_since")
            if since is not None and since < limit:
                problems.append(f"{row['unit']} failing since {since.isoformat()}: {row.get('last_error')}")
        return not problems, problems

    def webhook(
        self, provider: str, connection_name: str | None, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes]:
        metrics = self.service.metrics
        config = self.service.config
        candidates = [
            c for c in config.connections.values() if c.provider == provider and connection_name in (None, c.name)
        ]
        if not candidates:
            metrics.webhooks.labels(provider, "unknown").inc()
            return 404, b'{"error": "no connection for this provider"}'
        connection = candidates[0]
        secret = connection.settings.webhook_secret
        base = self.public_url or f"http://{headers.get('host', 'localhost')}"
        request = webhooks.WebhookRequest(
            method=method, url=base + path, headers=headers, body=body, received_at=time.time()
        )
        try:
            events = webhooks.intake(provider, request, secret.get_secret_value() if secret else None)
        except webhooks.WebhookRejected as exc:
            metrics.webhooks.labels(provider, "rejected").inc()
            logger.warning("webhook rejected: %s", exc.reason, extra={"connection": connection.name})
            return 401, b""
        fresh = []
        with self.service.store.session() as session:
            for event in events:
                if work.store_event(
                    session, provider, event.event_id, connection.name, event.stream, event.object_id, event.raw
                ):
                    fresh.append(event)
        for stream in sorted({s for e in fresh for s in e.streams if s}):
            self.service.due_now(connection.name, stream)
        metrics.webhooks.labels(provider, "accepted").inc()
        return 200, b""


class _Handler(BaseHTTPRequestHandler):
    owner: Listener
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
        logger.debug("listener: " + format, *args)

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.split("?")[0]
        if path == "/healthz":
            self._send(200, b'{"status": "ok"}')
        elif path == "/readyz":
            ready, problems = self.owner.readiness()
            self._send(200 if ready else 503, json.dumps({"ready": ready, "problems": problems}).encode())
        elif path == "/metrics":
            self._send(200, self.owner.service.metrics.exposition(), "text/plain; version=0.0.4")
        else:
            self._send(404, b'{"error": "not found"}')

    def do_POST(self) -> None:  # noqa: N802
        parts = [p for p in self.path.split("?")[0].split("/") if p]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if len(parts) in (2, 3) and parts[0] == "webhooks":
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, answer = self.owner.webhook(
                parts[1], parts[2] if len(parts) == 3 else None, "POST", self.path, headers, body
            )
            self._send(status, answer)
        else:
            self._send(404, b'{"error": "not found"}')
