"""A Galera cluster, its arbitrator, HAProxy and GTID replicas as local processes.

Every process gets its own data directory, socket and loopback ports under one base
directory; ``cluster.json`` there records what runs where, so ``status`` and ``down`` work
from another process. Administration goes over each server's Unix socket (as the OS user,
``unix_socket`` authentication), never over TCP as root. Nothing here is a home-made
failover: Galera keeps the quorum, HAProxy moves the writer, MariaDB replicates.
"""

from __future__ import annotations

import getpass
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from garrison.ops.cluster.recipes import free_ports, key_file, recipes_dir, render, write_private

STATE_FILE = "cluster.json"
SECRETS_FILE = "secrets.json"
ENV_FILE = "garrison.env"
DATABASE = "garrison"


class ClusterError(Exception):
    """A cluster step failed; the message is one line for the operator."""


class _Died(Exception):
    """A process exited while something waited for it (not worth waiting longer)."""


@dataclass
class Proc:
    name: str
    role: str  # node, arbitrator, haproxy, replica
    port: int
    pid: int | None = None
    ports: dict[str, int] = field(default_factory=dict)
    dir: str = ""


@dataclass
class ClusterSpec:
    nodes: int = 3
    arbitrator: bool = False
    replicas: int = 1
    app_hosts: list[str] = field(default_factory=lambda: ["127.0.0.1"])
    bind: str = "127.0.0.1"
    suspect_seconds: int = 2
    inactive_seconds: int = 4
    check_interval: str = "500ms"
    buffer_pool: str = "64M"
    tls: bool = False  # a private CA; the app user and the replicas must use TLS


def _run(args: list[str], *, timeout: float = 120, input: str | None = None) -> str:
    try:
        done = subprocess.run(  # noqa: S603 - fixed programs, arguments built here
            args, capture_output=True, text=True, timeout=timeout, input=input, check=False
        )
    except FileNotFoundError as exc:
        raise ClusterError(f"{args[0]} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise ClusterError(f"{Path(args[0]).name} did not finish in {timeout:.0f} s") from exc
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ClusterError(f"{Path(args[0]).name} failed: {last[0]}")
    return done.stdout


def wait_for(what: str, check: Callable[[], bool], timeout: float, interval: float = 0.2) -> None:
    """Poll ``check`` until it is true; a ClusterError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except (ClusterError, OSError) as exc:
            if isinstance(exc, ClusterError) and "exited" in str(exc):
                raise

        if time.monotonic() > deadline:
            raise ClusterError(f"{what} not reached within {timeout:.0f} s")
        time.sleep(interval)


def alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie of ours counts as gone.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done == 0


class LocalCluster:
    def __init__(self, base: Path) -> None:
        self.base = base.resolve()
        self.procs: dict[str, Proc] = {}
        self.spec = ClusterSpec()
        self.secrets: dict[str, str] = {}
        # Children started by this process, kept so they are reaped when they stop.
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        state = self.base / STATE_FILE
        if state.is_file():
            data = json.loads(state.read_text())
            self.spec = ClusterSpec(**data["spec"])
            self.procs = {p["name"]: Proc(**p) for p in data["procs"]}
        if (self.base / SECRETS_FILE).is_file():
            self.secrets = json.loads((self.base / SECRETS_FILE).read_text())

    # -- state ----------------------------------------------------------------------------

    def save(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        data = {"spec": asdict(self.spec), "procs": [asdict(p) for p in self.procs.values()]}
        (self.base / STATE_FILE).write_text(json.dumps(data, indent=2))

    @property
    def user(self) -> str:
        """The OS user the servers run as: ``mysql`` when started as root (rsync's state
        transfer refuses to write as root), else whoever runs the command."""
        if os.geteuid() == 0:
            return "mysql"
        return getpass.getuser()

    def _own(self, *paths: Path) -> None:
        """Hand the servers' files to their user (only needed when started as root)."""
        if os.geteuid() != 0:
            return
        for path in paths:
            for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
                shutil.chown(item, self.user, self.user)

    @property
    def admin(self) -> str:
        """The database administrator over the socket: the OS user (unix_socket)."""
        return "root" if os.geteuid() == 0 else getpass.getuser()

    def nodes(self) -> list[Proc]:
        return [p for p in self.procs.values() if p.role == "node"]

    def replicas(self) -> list[Proc]:
        return [p for p in self.procs.values() if p.role == "replica"]

    def socket_of(self, proc: Proc) -> str:
        return str(Path(proc.dir) / "mariadbd.sock")

    def sql(self, proc: Proc, statement: str, *, timeout: float = 30) -> list[list[str]]:
        """Run SQL as the administrator over the server's socket; rows as lists of text."""
        out = _run(
            [
                "mariadb",
                "--no-defaults",
                f"--socket={self.socket_of(proc)}",
                f"--user={self.admin}",
                "-N",
                "-B",
                "-e",
                statement,
            ],
            timeout=timeout,
        )
        return [line.split("\t") for line in out.splitlines() if line]

    def status_vars(self, proc: Proc, like: str = "wsrep%") -> dict[str, str]:
        return {
            row[0].lower(): row[1] if len(row) > 1 else ""
            for row in self.sql(proc, f"SHOW GLOBAL STATUS LIKE '{like}'", timeout=5)
        }

    # -- URLs -----------------------------------------------------------------------------

    def _url(self, user: str, password: str, port: int) -> str:
        return (
            f"mysql+asyncmy://{user}:{quote(password, safe='')}@{self.spec.bind}:{port}"
            f"/{DATABASE}?charset=utf8mb4"
        )

    @property
    def writer_url(self) -> str:
        return self._url("garrison_app", self.secrets["app"], self.procs["haproxy"].ports["write"])

    @property
    def reader_url(self) -> str:
        return self._url("garrison_app", self.secrets["app"], self.procs["haproxy"].ports["read"])

    def replica_urls(self) -> list[str]:
        return [self._url("garrison_app", self.secrets["app"], r.port) for r in self.replicas()]

    # -- up -------------------------------------------------------------------------------

    def up(self, spec: ClusterSpec, *, progress: Callable[[str], None] = lambda _: None) -> None:
        if any(self._alive(p.pid) for p in self.procs.values()):
            raise ClusterError(f"a cluster already runs in {self.base}; `garrison cluster down`")
        if spec.nodes + (1 if spec.arbitrator else 0) < 2:
            raise ClusterError("a cluster needs at least two members (nodes + arbitrator)")
        self.spec = spec
        self.base.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            for parent in [self.base, *self.base.parents]:
                if not parent.stat().st_mode & 0o001:
                    raise ClusterError(
                        f"{parent} is not reachable by the mysql user; use a directory"
                        " under a world-traversable path (for example /var/lib/garrison)"
                    )
        self.secrets = {name: secrets.token_urlsafe(18) for name in ("app", "monitor", "repl")}
        write_private(self.base / SECRETS_FILE, json.dumps(self.secrets))
        self._own(key_file(self.base / "keys" / "keyfile"))
        if spec.tls:
            from garrison.ops.cluster.tls import generate

            self.tls_dir.mkdir(parents=True, exist_ok=True)
            self.tls_dir.chmod(0o755)
            generate(self.tls_dir, [spec.bind, "localhost"])
            self._own(self.tls_dir)
        write_private(
            self.base / "monitor.cnf",
            f"[client]\nuser=garrison_monitor\npassword={self.secrets['monitor']}\n",
        )
        members = spec.nodes + (1 if spec.arbitrator else 0)
        ports = iter(free_ports(4 * spec.nodes + 2 + 3 + spec.replicas, spec.bind))
        self.procs = {}
        for i in range(1, spec.nodes + 1):
            name = f"node{i}"
            self.procs[name] = Proc(
                name,
                "node",
                next(ports),
                ports={"galera": next(ports), "ist": next(ports), "sst": next(ports)},
                dir=str(self.base / name),
            )
        if spec.arbitrator:
            self.procs["garbd"] = Proc("garbd", "arbitrator", next(ports), dir=str(self.base))
        self.procs["haproxy"] = Proc(
            "haproxy",
            "haproxy",
            next(ports),
            ports={"write": next(ports), "read": next(ports)},
            dir=str(self.base / "haproxy"),
        )
        for i in range(1, spec.replicas + 1):
            name = f"replica{i}"
            self.procs[name] = Proc(name, "replica", next(ports), dir=str(self.base / name))
        self.save()
        assert members >= 2
        first, *others = self.nodes()
        progress(f"bootstrapping {first.name}")
        self._install(first, galera=True)
        self.start(first.name, bootstrap=True)
        self._wait_synced(first, timeout=120)
        self._bootstrap_sql(first)
        for node in others:
            progress(f"joining {node.name} (state transfer)")
            Path(node.dir).mkdir(parents=True, exist_ok=True)
            self._write_node_cnf(node)
            self.start(node.name)
            self._wait_synced(node, timeout=180)
        if spec.arbitrator:
            progress("starting the arbitrator")
            self.start("garbd")
            wait_for(
                "cluster size with the arbitrator",
                lambda: int(self.status_vars(first)["wsrep_cluster_size"]) == members,
                60,
            )
        progress("starting HAProxy")
        self._write_haproxy()
        self.start("haproxy")
        self.wait_writer(timeout=60)
        for replica in self.replicas():
            progress(f"starting {replica.name} (asynchronous, GTID)")
            self._install(replica, galera=False)
            self.start(replica.name)
            self._follow(replica)
        self._write_env()
        self.save()

    @property
    def tls_dir(self) -> Path:
        return self.base / "tls"

    def _tls_line(self) -> str:
        if not self.spec.tls:
            return ""
        tls = self.tls_dir
        return (
            f"ssl_ca = {tls / 'ca.pem'}\nssl_cert = {tls / 'server-cert.pem'}\n"
            f"ssl_key = {tls / 'server-key.pem'}\n"
            # rsync's state transfer would need stunnel to encrypt; without it, plain (a
            # production recipe installs stunnel and removes this).
            "[sst]\nssl-mode = DISABLED\n"
        )

    def _node_fields(self, node: Proc) -> dict[str, object]:
        members = [f"{self.spec.bind}:{n.ports['galera']}" for n in self.nodes()]
        if "garbd" in self.procs:
            members.append(f"{self.spec.bind}:{self.procs['garbd'].port}")
        index = int(node.name.removeprefix("node"))
        return {
            "user": self.user,
            "datadir": Path(node.dir) / "data",
            "socket": self.socket_of(node),
            "logfile": Path(node.dir) / "mariadbd.err",
            "port": node.port,
            "bind": self.spec.bind,
            "buffer_pool": self.spec.buffer_pool,
            "cluster_server_id": 1,
            "local_domain": 100 + index,
            "cluster_domain": 1,
            "keyfile": self.base / "keys" / "keyfile",
            "tls": self._tls_line(),
            "cluster_name": f"garrison-{self.base.name}"[:32],
            "peers": ",".join(members),
            "name": node.name,
            "galera_port": node.ports["galera"],
            "sst_port": node.ports["sst"],
            "ist_port": node.ports["ist"],
            "suspect_seconds": self.spec.suspect_seconds,
            "inactive_seconds": self.spec.inactive_seconds,
        }

    def _write_node_cnf(self, node: Proc) -> Path:
        path = Path(node.dir) / "my.cnf"
        path.write_text(render("galera-node.cnf", **self._node_fields(node)))
        (Path(node.dir) / "data").mkdir(parents=True, exist_ok=True)
        self._own(Path(node.dir))
        return path

    def _write_replica_cnf(self, replica: Proc) -> Path:
        index = int(replica.name.removeprefix("replica"))
        path = Path(replica.dir) / "my.cnf"
        path.write_text(
            render(
                "replica.cnf",
                user=self.user,
                datadir=Path(replica.dir) / "data",
                socket=self.socket_of(replica),
                logfile=Path(replica.dir) / "mariadbd.err",
                port=replica.port,
                bind=self.spec.bind,
                buffer_pool=self.spec.buffer_pool,
                server_id=1000 + index,
                local_domain=200 + index,
                keyfile=self.base / "keys" / "keyfile",
                tls=self._tls_line(),
            )
        )
        self._own(Path(replica.dir))
        return path

    def _install(self, proc: Proc, *, galera: bool) -> None:
        """A fresh data directory; the bootstrap options without the [galera] section."""
        data = Path(proc.dir) / "data"
        if data.exists():
            shutil.rmtree(data)
        data.mkdir(parents=True)
        cnf = self._write_node_cnf(proc) if galera else self._write_replica_cnf(proc)
        install = Path(proc.dir) / "install.cnf"
        install.write_text(cnf.read_text().split("[galera]", 1)[0])
        _run(
            [
                "mariadb-install-db",
                f"--defaults-file={install}",
                f"--user={self.user}",
                "--skip-test-db",
                "--auth-root-authentication-method=socket",
            ],
            timeout=300,
        )

    def _bootstrap_sql(self, first: Proc) -> None:
        apps = "\n".join(
            render(
                "app-user.sql",
                app_host=host,
                app_password=self.secrets["app"],
                database=DATABASE,
                require="REQUIRE SSL" if self.spec.tls else "",
            )
            for host in self.spec.app_hosts
        )
        self.sql(
            first,
            render(
                "bootstrap.sql",
                database=DATABASE,
                app_users=apps,
                monitor_host=self.spec.bind,
                monitor_password=self.secrets["monitor"],
                replica_host=self.spec.bind,
                repl_password=self.secrets["repl"],
            ),
        )

    def _write_haproxy(self) -> None:
        proxy = self.procs["haproxy"]
        Path(proxy.dir).mkdir(parents=True, exist_ok=True)
        check = Path(proxy.dir) / "wsrep-check.sh"
        script = (recipes_dir() / "wsrep-check.sh").read_text()
        # HAProxy clears the environment of external checks: name the option file inline.
        script = script.replace(
            "${GARRISON_MONITOR_CNF:-/etc/garrison/monitor.cnf}", str(self.base / "monitor.cnf")
        )
        check.write_text(script)
        check.chmod(0o700)
        nodes = self.nodes()
        address = {n.name: f"{self.spec.bind}:{n.port}" for n in nodes}
        checks = "\n".join(f"    server {n.name} {address[n.name]} check" for n in nodes)
        writers = "\n".join(
            f"    server {n.name} {address[n.name]} track nodes_check/{n.name}"
            + (" backup" if i else "")
            for i, n in enumerate(nodes)
        )
        readers = "\n".join(
            f"    server {n.name} {address[n.name]} track nodes_check/{n.name}" for n in nodes
        )
        (Path(proxy.dir) / "haproxy.cfg").write_text(
            render(
                "haproxy.cfg",
                admin_socket=Path(proxy.dir) / "admin.sock",
                pidfile=Path(proxy.dir) / "haproxy.pid",
                check_script=check,
                check_interval=self.spec.check_interval,
                check_servers=checks,
                bind=self.spec.bind,
                write_port=proxy.ports["write"],
                read_port=proxy.ports["read"],
                writer_servers=writers,
                reader_servers=readers,
            )
        )

    def _follow(self, replica: Proc) -> None:
        proxy = self.procs["haproxy"]
        self.sql(
            replica,
            "SET GLOBAL gtid_slave_pos = ''; "
            f"CHANGE MASTER TO MASTER_HOST='{self.spec.bind}', "
            f"MASTER_PORT={proxy.ports['write']}, MASTER_USER='garrison_repl', "
            f"MASTER_PASSWORD='{self.secrets['repl']}', MASTER_USE_GTID=slave_pos, "
            "MASTER_CONNECT_RETRY=1"
            + (
                f", MASTER_SSL=1, MASTER_SSL_CA='{self.tls_dir / 'ca.pem'}'"
                if self.spec.tls
                else ""
            )
            + "; START SLAVE",
        )
        wait_for(
            f"{replica.name} replicating",
            lambda: (
                self.replica_state(replica).get("Slave_SQL_Running") == "Yes"
                and self.replica_state(replica).get("Slave_IO_Running") == "Yes"
            ),
            60,
        )

    def _write_env(self) -> None:
        readers = self.replica_urls() or [self.reader_url]
        tls = f"GARRISON_DB__TLS_CA='{self.tls_dir / 'ca.pem'}'\n" if self.spec.tls else ""
        write_private(
            self.base / ENV_FILE,
            # Single-quoted: read the same by a shell (`set -a; . file`) and by .env parsers.
            f"GARRISON_DATABASE_URL='{self.writer_url}'\n"
            f"GARRISON_DB__REPLICA_URL='{json.dumps(readers)}'\n{tls}",
        )

    # -- processes ------------------------------------------------------------------------

    def command(self, proc: Proc, *, bootstrap: bool = False) -> list[str]:
        if proc.role in ("node", "replica"):
            args = ["mariadbd", f"--defaults-file={Path(proc.dir) / 'my.cnf'}"]
            return [*args, "--wsrep-new-cluster"] if bootstrap else args
        if proc.role == "arbitrator":
            peers = ",".join(f"{self.spec.bind}:{n.ports['galera']}" for n in self.nodes())
            options = (
                f"gmcast.listen_addr=tcp://{self.spec.bind}:{proc.port}; "
                "evs.keepalive_period=PT0.5S; "
                f"evs.suspect_timeout=PT{self.spec.suspect_seconds}S; "
                f"evs.inactive_timeout=PT{self.spec.inactive_seconds}S; "
                "evs.inactive_check_period=PT0.5S; "
                f"evs.install_timeout=PT{self.spec.inactive_seconds}S"
            )
            return [
                "garbd",
                f"--address=gcomm://{peers}",
                f"--group=garrison-{self.base.name}"[:40],
                f"--options={options}",
                f"--log={self.base / 'garbd.log'}",
            ]
        return ["haproxy", "-db", "-f", str(Path(proc.dir) / "haproxy.cfg")]

    def start(self, name: str, *, bootstrap: bool = False) -> Proc:
        proc = self.procs[name]
        if self._alive(proc.pid):
            return proc
        if proc.role == "node" and not bootstrap and not (Path(proc.dir) / "my.cnf").is_file():
            self._write_node_cnf(proc)
        log = open(Path(proc.dir) / f"{name}.out", "ab")  # noqa: SIM115 - handed to the child
        try:
            child = subprocess.Popen(  # noqa: S603 - fixed programs
                self.command(proc, bootstrap=bootstrap),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise ClusterError(f"{self.command(proc)[0]} is not installed") from exc
        finally:
            log.close()
        proc.pid = child.pid
        self._children[child.pid] = child
        self.save()
        if proc.role in ("node", "replica"):

            def accepting() -> bool:
                if not self._alive(proc.pid):
                    raise _Died
                return bool(self.sql(proc, "SELECT 1", timeout=5))

            try:
                wait_for(f"{name} accepting connections", accepting, 240, 0.3)
            except _Died:
                proc.pid = None
                self.save()
                raise ClusterError(f"{name} exited at start: {self.last_error(proc)}") from None
        return proc

    def last_error(self, proc: Proc) -> str:
        log = Path(proc.dir) / "mariadbd.err"
        lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
        errors = [line for line in lines if "[ERROR]" in line]
        return (errors or lines or ["no log"])[-1][:300]

    def _alive(self, pid: int | None) -> bool:
        child = self._children.get(pid) if pid is not None else None
        if child is not None:
            return child.poll() is None
        return alive(pid)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[name]
        if proc.pid is not None and self._alive(proc.pid):
            os.kill(proc.pid, sig)
            wait_for(f"{name} stopped", lambda: not self._alive(proc.pid), 60, 0.05)
        self._children.pop(proc.pid or -1, None)
        proc.pid = None
        self.save()

    def rejoin(self, name: str) -> None:
        """Start a node that was stopped or killed; it catches up by IST or SST."""
        node = self.procs[name]
        self.start(name)
        self._wait_synced(node, timeout=180)

    def down(self) -> None:
        order = ["haproxy", *[r.name for r in self.replicas()], "garbd"]
        order += [n.name for n in reversed(self.nodes())]
        for name in order:
            proc = self.procs.get(name)
            if proc is None or not self._alive(proc.pid):
                continue
            assert proc.pid is not None
            os.kill(proc.pid, signal.SIGTERM)
            try:
                wait_for(f"{name} stopped", lambda p=proc: not self._alive(p.pid), 60, 0.1)  # type: ignore[misc]
            except ClusterError:
                os.kill(proc.pid, signal.SIGKILL)
                wait_for(f"{name} killed", lambda p=proc: not self._alive(p.pid), 10, 0.1)  # type: ignore[misc]
            self._children.pop(proc.pid, None)
            proc.pid = None
        for child in self._children.values():  # anything left from a failed start
            if child.poll() is None:
                child.kill()
            child.wait()
        self._children.clear()
        self.save()

    def destroy(self) -> None:
        self.down()
        shutil.rmtree(self.base, ignore_errors=True)

    # -- state of the members -------------------------------------------------------------

    def _wait_synced(self, node: Proc, *, timeout: float) -> None:
        wait_for(
            f"{node.name} Synced",
            lambda: self.status_vars(node).get("wsrep_local_state_comment") == "Synced",
            timeout,
            0.3,
        )

    def replica_state(self, replica: Proc) -> dict[str, str]:
        out = _run(
            [
                "mariadb",
                "--no-defaults",
                f"--socket={self.socket_of(replica)}",
                f"--user={self.admin}",
                "-E",
                "-e",
                "SHOW SLAVE STATUS",
            ],
            timeout=5,
        )
        state: dict[str, str] = {}
        for line in out.splitlines():
            key, sep, value = line.strip().partition(": ")
            if sep:
                state[key] = value
        return state

    def haproxy_servers(self) -> dict[str, dict[str, str]]:
        """``backend/server`` → HAProxy's stat fields (status UP/DOWN, …)."""
        proxy = self.procs["haproxy"]
        out = _run(
            ["socat", "-", f"UNIX-CONNECT:{Path(proxy.dir) / 'admin.sock'}"],
            input="show stat\n",
            timeout=5,
        )
        lines = [line for line in out.splitlines() if line]
        if not lines:
            return {}
        header = lines[0].lstrip("# ").split(",")
        servers = {}
        for line in lines[1:]:
            row = dict(zip(header, line.split(","), strict=False))
            if row.get("svname") not in ("FRONTEND", "BACKEND"):
                servers[f"{row['pxname']}/{row['svname']}"] = row
        return servers

    def wait_writer(self, *, timeout: float) -> str:
        """Wait until HAProxy's writer has a server UP; its name."""
        found: list[str] = []

        def up() -> bool:
            for key, row in self.haproxy_servers().items():
                if key.startswith("writer/") and row.get("status") == "UP":
                    found[:] = [key.split("/", 1)[1]]
                    return True
            return False

        wait_for("a healthy writer behind HAProxy", up, timeout, 0.2)
        return found[0]

    def active_writer(self) -> str | None:
        """The node HAProxy sends writes to: the first UP non-backup, else the first backup."""
        servers = self.haproxy_servers()
        rows = [(k.split("/", 1)[1], r) for k, r in servers.items() if k.startswith("writer/")]
        for backup in ("0", "1"):
            for name, row in rows:
                if row.get("bck") == backup and row.get("status") == "UP":
                    return name
        return None

    def status(self) -> dict[str, Any]:
        members: list[dict[str, Any]] = []
        haproxy: dict[str, dict[str, str]] = {}
        if "haproxy" in self.procs and alive(self.procs["haproxy"].pid):
            try:
                haproxy = self.haproxy_servers()
            except ClusterError:
                haproxy = {}
        for proc in self.procs.values():
            entry: dict[str, Any] = {
                "name": proc.name,
                "role": proc.role,
                "port": proc.port,
                "running": alive(proc.pid),
            }
            if entry["running"] and proc.role == "node":
                try:
                    wsrep = self.status_vars(proc)
                    entry.update(
                        state=wsrep.get("wsrep_local_state_comment"),
                        cluster_status=wsrep.get("wsrep_cluster_status"),
                        cluster_size=int(wsrep.get("wsrep_cluster_size", "0")),
                    )
                except ClusterError as exc:
                    entry["error"] = str(exc)
                entry["haproxy"] = haproxy.get(f"writer/{proc.name}", {}).get("status")
            elif entry["running"] and proc.role == "replica":
                try:
                    state = self.replica_state(proc)
                    entry.update(
                        io=state.get("Slave_IO_Running"),
                        sql=state.get("Slave_SQL_Running"),
                        lag=state.get("Seconds_Behind_Master"),
                    )
                except ClusterError as exc:
                    entry["error"] = str(exc)
            elif proc.role == "haproxy":
                entry["ports"] = proc.ports
            members.append(entry)
        return {"base": str(self.base), "members": members, "env_file": str(self.base / ENV_FILE)}
