"""Builds the aiohttp application: middlewares, routes, start-up and shutdown."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from aiohttp import web

from . import bundle, config
from .codegen import provider as codegen_provider
from .codegen import routes as codegen_routes
from .config import Settings
from .drives import routes as drives_routes
from .edits import routes as edits_routes
from .filesystem import read_routes, tree_routes, upload_routes, write_routes
from .filesystem import routes as filesystem_routes
from .filesystem.files import Files
from .filesystem.uploads import Uploads
from .http.access_log import access_log_middleware
from .http.appkeys import SETTINGS
from .http.auth import make_auth_middleware
from .http.cors import options_middleware
from .http.deadlines import GuardedAppRunner
from .http.errors import error_middleware
from .http.headers import make_on_prepare, timing_middleware
from .http.idempotency import IDEMPOTENCY
from .http.origins import BrowserGuard
from .http.prefix_routes import PREFIX_ROUTER, PrefixRouter
from .idempotency.service import Idempotency
from .lazy import OnFirstUse
from .linux.children import Children
from .linux.reaper import Child
from .linux.syscalls import release_free_memory, set_oom_score_adj
from .mcp import transport as mcp_transport
from .network import proxy as port_proxy
from .network import routes as network_routes
from .process import routes as process_routes
from .process.route_common import SUPERVISOR
from .process.supervisor import Supervisor
from .search import routes as search_routes
from .sessions import DIRECTORY as SESSIONS_DIRECTORY
from .sessions import routes as session_routes
from .system import metrics_routes, upgrade
from .system import routes as system_routes
from .system.environment import EnvironmentReloader
from .system.health import Health
from .terminal import routes as terminal_routes
from .watch import routes as watch_routes

if TYPE_CHECKING:
    from .codegen.service import Codegen
    from .drives.service import Drives
    from .edits.service import Edits
    from .network.monitors import Monitors
    from .network.tunnel import Tunnel
    from .search.content import ContentSearch
    from .sessions.service import Sessions
    from .system.metrics import Metrics
    from .terminal.sessions import Terminals

log = logging.getLogger("sandbox_api")

CHILDREN = web.AppKey("children", Children)
HEALTH = system_routes.HEALTH
SHUTDOWN = web.AppKey("shutdown", asyncio.Event)  # set to stop serve() (signals, upgrades)

MAX_HEADER_BYTES = 1024 * 1024
ACCEPT_BATCH = 64  # connections accepted per turn of the event loop
LISTEN_QUEUE = 1024  # connections the kernel queues meanwhile
KEEPALIVE_IDLE_SECONDS = 120.0
# JSON bodies (e.g. a file written as JSON content) may be large; streamed bodies
# (uploads, stdin) are not bound by this.
CLIENT_MAX_SIZE = 64 * 1024 * 1024


def build_app(settings: Settings) -> web.Application:
    guard = BrowserGuard(settings.allowed_hosts, settings.allowed_origins, token_required=bool(settings.auth_token))
    middlewares = [guard.middleware(), options_middleware]
    if settings.enable_processing_time:  # its start time serves only the Server-Timing header
        middlewares.append(timing_middleware)
    if not settings.disable_request_logging:
        middlewares.append(access_log_middleware)
    middlewares.append(error_middleware)
    if settings.auth_token:
        middlewares.append(make_auth_middleware(settings.auth_token))
    prefixes = PrefixRouter()
    middlewares.append(prefixes.middleware())
    app = web.Application(middlewares=middlewares, client_max_size=CLIENT_MAX_SIZE)
    children = Children()
    app[SETTINGS] = settings
    app[PREFIX_ROUTER] = prefixes
    app[CHILDREN] = children
    app[SUPERVISOR] = Supervisor(settings, children)
    app[HEALTH] = Health(upgrade_count=settings.upgrade_count, last_upgrade=upgrade.status_from_previous_life())
    app[SHUTDOWN] = asyncio.Event()
    app[system_routes.UPGRADER] = upgrade.Upgrader(app[HEALTH], children, app[SHUTDOWN].set, settings.auth_token)
    app[system_routes.ENVIRONMENT] = EnvironmentReloader(settings.metadata_path)
    app[filesystem_routes.FILES] = Files(settings.identity, settings.max_text_read_bytes)
    app[filesystem_routes.UPLOADS] = Uploads(settings.uploads_dir, settings.upload_ttl_seconds, settings.identity)
    _on_first_use(app, settings, children)
    app[IDEMPOTENCY] = Idempotency(settings.state_dir, settings.idempotency_seconds, settings.idempotency_max_keys)
    codegen_enabled = codegen_provider.enabled()  # the MCP registration of its two tools is decided now

    def mcp_tools() -> Any:  # on the first /mcp request: the tools module is not needed before
        from .mcp.tools import Tools

        return Tools(
            settings,
            app[SUPERVISOR],
            app[filesystem_routes.FILES],
            app[search_routes.CONTENT_SEARCH],
            app[codegen_routes.CODEGEN],
            codegen_enabled,
            app[edits_routes.EDITS],
            app[metrics_routes.METRICS],
            app[session_routes.SESSIONS],
        )

    app[mcp_transport.MCP] = mcp_transport.McpEndpoint(mcp_tools)
    app.on_response_prepare.append(make_on_prepare(settings.enable_processing_time))
    app.cleanup_ctx.append(_services)
    app.on_shutdown.append(_end_streams)
    system_routes.add_routes(app)
    process_routes.add_routes(app)
    read_routes.add_routes(app, prefixes)
    write_routes.add_routes(app, prefixes)
    filesystem_routes.add_routes(app, prefixes)
    upload_routes.add_routes(app, prefixes)
    tree_routes.add_routes(app, prefixes)
    search_routes.add_routes(app, prefixes)
    codegen_routes.add_routes(app, prefixes)
    watch_routes.add_routes(app, prefixes)
    network_routes.add_routes(app)
    edits_routes.add_routes(app)
    metrics_routes.add_routes(app)
    drives_routes.add_routes(app, prefixes)
    session_routes.add_routes(app)
    port_proxy.add_routes(app)
    mcp_transport.add_routes(app)
    if not settings.disable_terminal:
        terminal_routes.add_routes(app)
    return app


def _on_first_use(app: web.Application, settings: Settings, children: Children) -> None:
    """The services of the less used families: each factory imports its module, so that
    neither start-up nor a family's absence pays for it (their routes are registered)."""
    supervisor, files = app[SUPERVISOR], app[filesystem_routes.FILES]

    def monitors() -> Monitors:
        from .network.monitors import Monitors

        return Monitors()

    def tunnel() -> Tunnel:
        from .network.tunnel import Tunnel

        return Tunnel(children)

    def drives() -> Drives:
        from .drives.service import Drives

        return Drives(settings, children)

    def content_search() -> ContentSearch:
        from .search.content import ContentSearch

        return ContentSearch(children, settings.search_timeout, settings.identity)

    def codegen() -> Codegen:
        from .codegen.service import Codegen

        return Codegen(files)

    def edits() -> Edits:
        from .edits.service import Edits

        return Edits(settings.identity, settings.max_edit_bytes)

    def metrics() -> Metrics:
        from .system.metrics import Metrics, running_processes

        return Metrics(settings.workdir, running_processes(supervisor))

    def sessions() -> Sessions:
        from .sessions.service import Sessions

        built = Sessions(settings, children)
        built.open()  # its idle reaper; what a killed daemon left is killed
        return built

    def terminals() -> Terminals:
        from .terminal.sessions import Terminals

        built = Terminals(settings, children)
        built.start()  # its idle reaper
        return built

    app[network_routes.MONITORS] = OnFirstUse(monitors)
    app[network_routes.TUNNEL] = OnFirstUse(tunnel)
    app[drives_routes.DRIVES] = OnFirstUse(drives)
    app[search_routes.CONTENT_SEARCH] = OnFirstUse(content_search)
    app[codegen_routes.CODEGEN] = OnFirstUse(codegen)
    app[edits_routes.EDITS] = OnFirstUse(edits)
    app[metrics_routes.METRICS] = OnFirstUse(metrics)
    app[session_routes.SESSIONS] = OnFirstUse(sessions)
    if not settings.disable_terminal:
        app[terminal_routes.TERMINALS] = OnFirstUse(terminals)


async def _services(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    children = app[CHILDREN]
    children.install()
    set_oom_score_adj("self", -500)
    await app[SUPERVISOR].open()
    await app[filesystem_routes.UPLOADS].open()
    if (settings.state_dir / SESSIONS_DIRECTORY).exists():
        app[session_routes.SESSIONS]()  # a killed daemon's sessions: their shells are killed now, as ever
    app[IDEMPOTENCY].open()
    startup = _start_command(children, settings) if settings.startup_command else None
    try:
        yield
    finally:
        terminals = app[terminal_routes.TERMINALS].built if terminal_routes.TERMINALS in app else None
        if terminals is not None:
            await terminals.close()
        await app[mcp_transport.MCP].close()
        if (sessions := app[session_routes.SESSIONS].built) is not None:
            await sessions.close()
        await app[system_routes.UPGRADER].close()
        if (monitors := app[network_routes.MONITORS].built) is not None:
            await monitors.close()
        await app[filesystem_routes.UPLOADS].close()
        await app[SUPERVISOR].close()
        app[IDEMPOTENCY].close()
        if startup is not None and startup.returncode is None and startup.popen is not None:
            try:
                startup.popen.send_signal(signal.SIGKILL)
            except ProcessLookupError:
                pass
        children.close()


async def _end_streams(app: web.Application) -> None:
    closing = app[SUPERVISOR].closing
    if closing is not None and not closing.done():
        closing.set_result(None)


def _deepen_listen_queue(site: web.TCPSite) -> None:
    """asyncio accepts up to `backlog` connections in one turn of the loop and uses the
    same number for the kernel's queue: a flood of connections (3,000 at once) would hold
    the loop ~100 ms per batch of 1024. The site is made with a small batch, and its
    sockets' kernel queue deepened afterwards (listen() again sets only the queue)."""
    server = getattr(site, "_server", None)  # aiohttp keeps the asyncio Server there
    for sock in getattr(server, "sockets", ()):
        try:
            with socket.fromfd(sock.fileno(), sock.family, sock.type) as same:  # a dup: the same socket
                same.listen(LISTEN_QUEUE)
        except OSError as e:
            log.warning("cannot deepen the listen queue: %s", e)


def _start_command(children: Children, settings: Settings) -> Child:
    """The -c command: run in the background, its output in ours, not a managed process."""
    argv = [settings.shell_path, *settings.shell_args, settings.startup_command]
    identity = settings.identity
    env = config.child_environment(identity=identity)
    child = children.spawn(argv, cwd="/", env=env, stdin=subprocess.DEVNULL, identity=identity)
    set_oom_score_adj(child.pid, 500)
    log.info("started startup command (pid %d): %s", child.pid, settings.startup_command)

    async def report() -> None:
        code = await child.wait()
        log.info("startup command exited with code %d", code)

    asyncio.get_running_loop().create_task(report())
    return child


async def serve(settings: Settings, ready: asyncio.Event | None = None) -> upgrade.ExecRequest | None:
    """Run until SIGTERM or SIGINT (or a validated upgrade), then shut down cleanly
    (managed processes stay). Returns what to exec next after an upgrade."""
    app = build_app(settings)
    runner = GuardedAppRunner(
        app,
        header_timeout=settings.header_timeout,
        body_idle_timeout=settings.body_idle_timeout,
        access_log=None,
        handle_signals=False,
        keepalive_timeout=KEEPALIVE_IDLE_SECONDS,
        max_line_size=MAX_HEADER_BYTES,
        max_field_size=MAX_HEADER_BYTES,
        shutdown_timeout=settings.shutdown_timeout,
    )
    await runner.setup()
    stop = app[SHUTDOWN]
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(runner, settings.host, settings.port, backlog=ACCEPT_BATCH, reuse_address=True)
        await site.start()
        _deepen_listen_queue(site)
        log.info("sandbox-api %s listening on %s:%d", config.version(), settings.host, settings.port)
        # Start-up ran without the cyclic collector (~5% of it): what it built lives as long
        # as the daemon, so it is set aside for good and later collections skip it.
        gc.freeze()
        gc.enable()
        bundle.listening()
        release_free_memory()  # what start-up allocated and freed: idle RSS matters in a sandbox
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("shutting down")
    finally:
        await runner.cleanup()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    return app[system_routes.UPGRADER].exec_request
