"""The launch contract: the environment variables a manager sets for every
instance it starts (see modules/README.md, "Launch contract").

The rules and the error messages are those of the Rust runtime
(modules/src/runtime/contract.rs), so that a module in Python and a built-in
module refuse a broken contract in the same words. Parsing is separated from
reading the environment (Contract.from_lookup) so that the rules can be
tested without touching os.environ.
"""

import ipaddress
import os
import re

MGR_RUN = "MGR_RUN"
MGR_SELF = "MGR_SELF"
MGR_ADDR = "MGR_ADDR"
MGR_PEERS = "MGR_PEERS"
MGR_MEMBER = "MGR_MEMBER"
MGR_UDP_FD = "MGR_UDP_FD"
MGR_CONTROL_FD = "MGR_CONTROL_FD"
MGR_EVENTS = "MGR_EVENTS"
MGR_DIR = "MGR_DIR"
MGR_FAULTS = "MGR_FAULTS"
MGR_ROLE = "MGR_ROLE"
MGR_ROLES = "MGR_ROLES"
MGR_MULTICAST = "MGR_MULTICAST"
MGR_INCARNATION = "MGR_INCARNATION"

# Message ids of incarnation N start after (N - 1) * ID_STRIDE, so that a
# restarted process never reuses an id of its earlier incarnations.
ID_STRIDE = 1_000_000_000

U64_MAX = 2**64 - 1

# The most incarnations an instance has, as in the Rust runtime: far more
# restarts than a run sees, and few enough that message ids stay within the
# u64 that Rust receivers parse them into.
MAX_INCARNATION = 1_000_000


class ContractError(Exception):
    """The environment does not hold a valid launch contract. The message
    names the variable, so that a user starting a module by hand knows what
    to fix."""


def parse_u64(text):
    """A decimal u64 as Rust's `str::parse::<u64>` reads it (an optional
    '+', ASCII digits, no spaces, no underscores), or None."""
    if not re.fullmatch(r"\+?[0-9]+", text):
        return None
    value = int(text)
    return value if value <= U64_MAX else None


def _parse_int_i32(text):
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        return None
    value = int(text)
    return value if -(2**31) <= value < 2**31 else None


class SocketAddr:
    """An IP address and a port, compared and printed as Rust's SocketAddr
    is: `127.0.0.1:7001`, `[::1]:7001`. Peers are recognised by the source
    address of their datagrams, so equality must be exact."""

    __slots__ = ("ip", "port", "scope")

    def __init__(self, ip, port, scope=0):
        self.ip = ip
        self.port = port
        self.scope = scope

    @property
    def is_ipv6(self):
        return self.ip.version == 6

    def _key(self):
        return (self.ip.version, int(self.ip), self.port, self.scope)

    def __eq__(self, other):
        return isinstance(other, SocketAddr) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        return "SocketAddr(%r)" % str(self)

    def __str__(self):
        if not self.is_ipv6:
            return "%s:%d" % (self.ip, self.port)
        scope = "%%%d" % self.scope if self.scope else ""
        return "[%s%s]:%d" % (ipv6_text(self.ip), scope, self.port)

    def sockaddr(self):
        """The address as Python's socket functions take it."""
        if self.is_ipv6:
            return (str(self.ip), self.port, 0, self.scope)
        return (str(self.ip), self.port)

    @staticmethod
    def from_sockaddr(sockaddr):
        """The address a socket function returned (recvfrom, getsockname)."""
        host, port = sockaddr[0], sockaddr[1]
        ip = ipaddress.ip_address(host.split("%", 1)[0])
        scope = sockaddr[3] if len(sockaddr) >= 4 else 0
        return SocketAddr(ip, port, scope)


def ipv6_text(ip):
    """An IPv6 address as Rust prints it: RFC 5952, and an IPv4-mapped
    address with its IPv4 part dotted (older Pythons print it in hex)."""
    mapped = ip.ipv4_mapped
    if mapped is not None:
        return "::ffff:%s" % mapped
    return ip.compressed


def _parse_ipv4(text):
    # Rust reads four decimal octets of at most three digits each, with no
    # leading zero (which some C libraries read as octal).
    parts = text.split(".")
    if len(parts) != 4:
        return None
    for part in parts:
        if not re.fullmatch(r"[0-9]{1,3}", part) or (len(part) > 1 and part[0] == "0") or int(part) > 255:
            return None
    return ipaddress.IPv4Address(text)


def _parse_port(text):
    if not re.fullmatch(r"[0-9]+", text):
        return None
    port = int(text)
    return port if port <= 65535 else None


def parse_socket_addr(text):
    """Parses `ip:port` or `[ipv6]:port` (`[ipv6%scope]:port`, a numeric
    scope) the way Rust's `SocketAddr::from_str` does; None if it is not one."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1 : end + 2] != ":":
            return None
        host, port_text = text[1:end], text[end + 2 :]
        scope = 0
        if "%" in host:
            host, scope_text = host.split("%", 1)
            if not re.fullmatch(r"[0-9]+", scope_text) or int(scope_text) >= 2**32:
                return None
            scope = int(scope_text)
        # Python accepts a "%scope" suffix and nothing else Rust refuses:
        # the suffix was split off above, so this reads a bare address.
        if "%" in host or not re.fullmatch(r"[0-9A-Fa-f:.]+", host):
            return None
        try:
            ip = ipaddress.IPv6Address(host)
        except ValueError:
            return None
        port = _parse_port(port_text)
        return None if port is None else SocketAddr(ip, port, scope)
    host, sep, port_text = text.rpartition(":")
    if not sep:
        return None
    ip = _parse_ipv4(host)
    port = _parse_port(port_text)
    if ip is None or port is None:
        return None
    return SocketAddr(ip, port)


class Contract:
    """Everything an instance learns from the manager at launch."""

    def __init__(self, **fields):
        self.run = fields["run"]
        self.self_name = fields["self_name"]
        self.addr = fields["addr"]
        # Every instance of the run in the manager's order, this one included:
        # a list of (name, SocketAddr).
        self.peers = fields["peers"]
        self.member = fields["member"]
        self.events_path = fields.get("events_path")
        self.udp_fd = fields.get("udp_fd")
        self.control_fd = fields.get("control_fd")
        self.dir = fields.get("dir")
        # This instance's role in a run with roles, else None.
        self.role = fields.get("role")
        # The run's roles in order, each (role, [instances]); empty without roles.
        self.roles = fields.get("roles", [])
        self.multicast = fields.get("multicast")
        # 1 at the first start of the instance, +1 at each restart.
        self.incarnation = fields.get("incarnation", 1)

    def retable(self, peers, roles):
        """Takes the run's new table after a scale (the `peers` control
        line), in the formats of MGR_PEERS and MGR_ROLES; this process must
        still be listed at its address. On an error nothing changes."""
        table = parse_peers(peers)
        listed = dict(table).get(self.self_name)
        if listed is None:
            raise ContractError("MGR_PEERS: does not list MGR_SELF '%s'" % self.self_name)
        if listed != self.addr:
            raise ContractError("MGR_PEERS: lists '%s' at %s but MGR_ADDR is %s" % (self.self_name, listed, self.addr))
        new_roles = parse_roles(roles, table) if roles else []
        self.peers = table
        self.roles = new_roles

    @staticmethod
    def from_env(environ=None):
        """Reads the contract from the environment (os.environ by default)."""
        environ = os.environ if environ is None else environ
        return Contract.from_lookup(environ.get)

    @staticmethod
    def from_lookup(lookup):
        """Reads the contract through `lookup`, which returns a variable's
        value (str, or bytes as the OS gave it) or None when it is not set.
        Raises ContractError, in the order the Rust runtime checks."""

        def unicode(var, value):
            if isinstance(value, bytes):
                try:
                    return value.decode("utf-8")
                except UnicodeDecodeError:
                    raise ContractError("%s: not valid UTF-8" % var) from None
            try:
                # os.environ keeps undecodable bytes as lone surrogates.
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ContractError("%s: not valid UTF-8" % var) from None
            return value

        def required(var):
            value = lookup(var)
            if value is None:
                raise ContractError("%s: not set" % var)
            value = unicode(var, value)
            if value == "":
                raise ContractError("%s: empty" % var)
            return value

        def optional(var):
            # An optional variable set to the empty string counts as unset,
            # because that is the easiest way for a shell script to unset it.
            value = lookup(var)
            if value is None or len(value) == 0:
                return None
            return value

        def text(var):
            value = optional(var)
            return None if value is None else unicode(var, value)

        def path(var):
            value = optional(var)
            if isinstance(value, bytes):
                return os.fsdecode(value)
            return value

        run = required(MGR_RUN)
        self_name = required(MGR_SELF)
        addr_text = required(MGR_ADDR)
        addr = parse_socket_addr(addr_text)
        if addr is None:
            raise ContractError("%s: '%s' is not an ip:port address" % (MGR_ADDR, addr_text))
        peers = parse_peers(required(MGR_PEERS))
        member = required(MGR_MEMBER)

        listed = [a for name, a in peers if name == self_name]
        if not listed:
            raise ContractError("MGR_PEERS: does not list MGR_SELF '%s'" % self_name)
        if listed[0] != addr:
            raise ContractError("MGR_PEERS: lists '%s' at %s but MGR_ADDR is %s" % (self_name, listed[0], addr))

        def fd(var):
            value = text(var)
            if value is None:
                return None
            number = _parse_int_i32(value)
            # Descriptors 0 to 2 are stdin, stdout and stderr, which the
            # contract already gives other roles.
            if number is None or number <= 2:
                raise ContractError("%s: '%s' is not a descriptor number above 2" % (var, value))
            return number

        udp_fd = fd(MGR_UDP_FD)
        control_fd = fd(MGR_CONTROL_FD)

        roles_text = text(MGR_ROLES)
        roles = parse_roles(roles_text, peers) if roles_text is not None else []
        given_role = text(MGR_ROLE)
        if not roles:
            if given_role is not None:
                raise ContractError("MGR_ROLE: set to '%s' but MGR_ROLES is not set" % given_role)
            role = None
        else:
            # Every instance is in exactly one role, so MGR_ROLES alone says
            # which is ours; MGR_ROLE must agree with it.
            role = _role_of(roles, self_name)
            if given_role is not None and given_role != role:
                raise ContractError(
                    "MGR_ROLE: '%s', but MGR_ROLES lists MGR_SELF '%s' in role '%s'" % (given_role, self_name, role)
                )
        multicast_text = text(MGR_MULTICAST)
        multicast = parse_multicast(multicast_text) if multicast_text is not None else None
        incarnation = parse_incarnation(text(MGR_INCARNATION))

        return Contract(
            run=run,
            self_name=self_name,
            addr=addr,
            peers=peers,
            member=member,
            events_path=path(MGR_EVENTS),
            udp_fd=udp_fd,
            control_fd=control_fd,
            dir=path(MGR_DIR),
            role=role,
            roles=roles,
            multicast=multicast,
            incarnation=incarnation,
        )

    def id_base(self):
        """What this incarnation adds to its message numbers: its first
        message is id_base() + 1."""
        return (self.incarnation - 1) * ID_STRIDE

    def peer_addr(self, name):
        """The address of the process called `name`, if it is part of the run."""
        for peer, addr in self.peers:
            if peer == name:
                return addr
        return None

    def peer_name(self, addr):
        """The name of the process whose socket is at `addr` (a SocketAddr),
        if it is part of the run."""
        for name, peer in self.peers:
            if peer == addr:
                return name
        return None

    def peer_list(self):
        """The names of all processes of the run, joined by ", "."""
        return ", ".join(name for name, _ in self.peers)

    def index(self):
        """This process's position in MGR_PEERS (its entry in vector clocks)."""
        for i, (name, _) in enumerate(self.peers):
            if name == self.self_name:
                return i
        return 0

    def role_instances(self, role):
        """The instances of role `role` with their addresses, in MGR_ROLES order."""
        for name, names in self.roles:
            if name == role:
                return [(n, self.peer_addr(n)) for n in names]
        return []

    def first_of_role(self, role):
        """The first instance of role `role`, (name, addr), or None."""
        instances = self.role_instances(role)
        return instances[0] if instances else None

    def role_of(self, name):
        """The role of the instance called `name`, in a run with roles."""
        return _role_of(self.roles, name)

    def role_peers(self):
        """The instances this one works with: those of its own role, itself
        included, in order; every instance of the run when it has no roles."""
        if self.role is None:
            return list(self.peers)
        return self.role_instances(self.role)

    def is_role_peer(self, name):
        if self.role is None:
            return self.peer_addr(name) is not None
        return self.role_of(name) == self.role

    def rank_in_role(self):
        for i, (name, _) in enumerate(self.role_peers()):
            if name == self.self_name:
                return i
        return 0


def _role_of(roles, name):
    for role, names in roles:
        if name in names:
            return role
    return None


def parse_peers(text):
    """Parses `p1=ip:port,p2=ip:port,...` into [(name, SocketAddr)]."""
    peers = []
    for entry in text.split(","):
        entry = entry.strip()
        # A trailing comma is harmless, so it is tolerated rather than rejected.
        if not entry:
            continue
        name, sep, addr_text = entry.partition("=")
        if not sep:
            raise ContractError("MGR_PEERS: entry '%s' has no '='" % entry)
        if not name:
            raise ContractError("MGR_PEERS: entry '%s' has an empty name" % entry)
        addr = parse_socket_addr(addr_text)
        if addr is None:
            raise ContractError("MGR_PEERS: entry '%s': '%s' is not an ip:port address" % (entry, addr_text))
        # Names and addresses must both be unique: a sender is recognised by
        # its source address, and a destination is chosen by its name.
        if any(other == name for other, _ in peers):
            raise ContractError("MGR_PEERS: process '%s' is listed twice" % name)
        if any(other == addr for _, other in peers):
            raise ContractError("MGR_PEERS: address %s is listed twice" % addr)
        peers.append((name, addr))
    return peers


def parse_roles(text, peers):
    """Parses `peer=p1,p2;comparator=p3` against the run's peers."""
    roles = []
    known = {name for name, _ in peers}
    for entry in text.split(";"):
        entry = entry.strip()
        if not entry:
            continue
        role, sep, names_text = entry.partition("=")
        if not sep:
            raise ContractError("MGR_ROLES: entry '%s' has no '=' (expected role=p1,p2;role=p3)" % entry)
        role = role.strip()
        if not role:
            raise ContractError("MGR_ROLES: entry '%s' has an empty role name" % entry)
        if any(other == role for other, _ in roles):
            raise ContractError("MGR_ROLES: role '%s' is listed twice" % role)
        names = []
        for name in (n.strip() for n in names_text.split(",")):
            if not name:
                continue
            if name not in known:
                raise ContractError("MGR_ROLES: role '%s' lists '%s', which is not in MGR_PEERS" % (role, name))
            if name in names:
                raise ContractError("MGR_ROLES: role '%s' lists '%s' twice" % (role, name))
            first = _role_of(roles, name)
            if first is not None:
                raise ContractError("MGR_ROLES: '%s' is in two roles, '%s' and '%s'" % (name, first, role))
            names.append(name)
        if not names:
            raise ContractError("MGR_ROLES: role '%s' has no instances" % role)
        roles.append((role, names))
    # An instance outside every role would be reachable by no role's
    # helpers: the manager lists the whole run, so a gap is a broken contract.
    for name, _ in peers:
        if _role_of(roles, name) is None:
            raise ContractError("MGR_ROLES: '%s' of MGR_PEERS is in no role" % name)
    return roles


def parse_multicast(text):
    """Parses `239.a.b.c:port`: an IPv4 multicast group and a port other than 0."""
    addr = parse_socket_addr(text.strip())
    if addr is None or addr.is_ipv6:
        raise ContractError("MGR_MULTICAST: '%s' is not an IPv4 ip:port address" % text)
    if not addr.ip.is_multicast:
        raise ContractError("MGR_MULTICAST: %s is not an IP multicast address (224.0.0.0/4)" % addr.ip)
    if addr.port == 0:
        raise ContractError("MGR_MULTICAST: %s has port 0" % addr)
    return addr


def parse_incarnation(text):
    """MGR_INCARNATION: unset or empty is 1; otherwise a whole number from
    1 to MAX_INCARNATION."""
    if text is None:
        return 1
    value = parse_u64(text)
    if value is None or not 1 <= value <= MAX_INCARNATION:
        raise ContractError("MGR_INCARNATION must be a whole number of at least 1, not '%s'" % text)
    return value
