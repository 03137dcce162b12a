//! Command-line interface of the `xdhcp` binary.
use std::net::Ipv4Addr;

use clap::{Args, Parser, Subcommand};

use crate::fastpath::AttachMode;

#[derive(Parser, Debug)]
#[command(name = "xdhcp", version, about = "DHCPv4 server with an XDP renewal fast path")]
pub struct Cli {
    /// Act inside this network namespace (from `ip netns add`). Unlike `ip netns exec`, pins
    /// made here stay in the host's bpffs.
    #[arg(long, global = true)]
    pub netns: Option<String>,
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// Where `xdhcp run` listens by default (the `control_socket` config key).
pub const DEFAULT_SOCKET: &str = "/run/xdhcp/control.sock";

#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Run the server.
    Run {
        #[arg(long)]
        config: std::path::PathBuf,
    },
    /// Validate a config without starting anything, and print what it would serve.
    Check {
        #[arg(long)]
        config: std::path::PathBuf,
    },
    /// Bring ISC dhcpd's files into xdhcp: its config as xdhcp's, its leases into the store.
    Import {
        #[command(subcommand)]
        cmd: ImportCmd,
    },
    /// Leases the running server holds, in address order. A lookup by address, MAC or client
    /// identifier comes from an index; a listing comes in pages, so that the server keeps
    /// serving while a large one is printed.
    Leases {
        /// Only this address.
        #[arg(long)]
        addr: Option<Ipv4Addr>,
        /// Only this client MAC.
        #[arg(long)]
        mac: Option<String>,
        /// Only bindings on this line: the option 82 circuit-id as shown, or its bytes in hex
        /// (0x...).
        #[arg(long)]
        circuit_id: Option<String>,
        /// Only bindings with this option 82 remote-id, written as for --circuit-id.
        #[arg(long)]
        remote_id: Option<String>,
        /// Only bindings made for this client class ("" for those in none).
        #[arg(long)]
        class: Option<String>,
        /// Only this client identifier (option 61, hex, type byte included).
        #[arg(long)]
        client_id: Option<String>,
        /// Only records in this state (free, active, expired, released, abandoned, reset,
        /// backup).
        #[arg(long)]
        state: Option<String>,
        /// Only records after this address (to resume a listing).
        #[arg(long)]
        after: Option<Ipv4Addr>,
        /// At most this many records.
        #[arg(long)]
        limit: Option<usize>,
        /// How many records there are, by state and by subnet, instead of the records.
        #[arg(long)]
        count: bool,
        /// One JSON array.
        #[arg(long, conflicts_with = "jsonl")]
        json: bool,
        /// One JSON object a line, printed as the pages arrive.
        #[arg(long)]
        jsonl: bool,
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: std::path::PathBuf,
    },
    /// The running server's metrics in Prometheus text format.
    Metrics {
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: std::path::PathBuf,
    },
    /// Attach the fast path to an interface and pin it (or adopt what is pinned there).
    Attach {
        #[arg(long)]
        iface: String,
        #[arg(long, value_enum, default_value = "auto")]
        mode: AttachMode,
        /// Attach with the fast path switched off (everything passes to userspace).
        #[arg(long)]
        disabled: bool,
        #[expect(
            clippy::doc_markdown,
            reason = "clap prints this doc comment as --help text, where backticks would show literally"
        )]
        /// Attach only the do-nothing program, for the client side of a veth lab (XDP_TX from
        /// the server side reaches a veth peer only if it runs an XDP program).
        #[arg(long, conflicts_with = "disabled")]
        peer: bool,
    },
    /// Remove the fast path from an interface for good: program, link and maps.
    Detach {
        #[arg(long)]
        iface: String,
    },
    /// Inspect the pinned kernel maps.
    Maps {
        #[command(subcommand)]
        cmd: MapsCmd,
    },
    /// Fast-path counters: ACKs sent, every reason a packet was passed or policed, and the keys
    /// (MAC, access port, VLAN, interface) policing refused most.
    Stats {
        /// Interface (default: every interface with a pinned fast path).
        #[arg(long)]
        iface: Option<String>,
        #[arg(long)]
        json: bool,
        /// Also the running server's counters, from its control socket.
        #[arg(long)]
        socket: Option<std::path::PathBuf>,
    },
    /// Put or delete a lease entry by hand (lab, tests, emergencies).
    Lease {
        #[command(subcommand)]
        cmd: LeaseCmd,
    },
    /// Set a reply profile's fast-path reply data (a subnet's options) by hand.
    Subnet(SubnetArgs),
    /// The failover relationship of the running server.
    Failover {
        #[command(subcommand)]
        cmd: FailoverCmd,
    },
    /// The lease history (`[history]`): the events of an address, a MAC or a line, from the
    /// local history files or the fleet's PostgreSQL table; with --at, who held the address
    /// then. One JSON object a line, oldest first.
    History(HistoryArgs),
    /// Switch the fast path on or off, or change how it reports ACKs.
    Control {
        #[arg(long)]
        iface: String,
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        #[arg(long)]
        disable: bool,
        /// Send a ring-buffer event for every ACK.
        #[arg(long)]
        events: Option<bool>,
        /// Smallest grant, seconds, the kernel answers (at least 60).
        #[arg(long)]
        min_grant: Option<u32>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ImportCmd {
    /// An ISC dhcpd 4.4 dhcpd.conf (and the files it includes) as an xdhcp config. Statements
    /// that cannot be translated are listed with file and line; unless
    /// --accept-untranslated is given, nothing is written when there are any.
    DhcpdConf {
        file: std::path::PathBuf,
        /// Where to write the config (default: standard output).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
        /// Write the translation even though some statements are left out.
        #[arg(long)]
        accept_untranslated: bool,
        /// An interface to serve (dhcpd's command-line interfaces); at least one.
        #[arg(long = "interface", required = true)]
        interfaces: Vec<String>,
        /// The server identifier (default: the file's server-identifier, else its failover
        /// peer's address).
        #[arg(long)]
        server_id: Option<Ipv4Addr>,
    },
    /// Load an ISC dhcpd 4.4 lease file (dhcpd.leases) into the empty store of the xdhcp config
    /// given, every binding under the subnet holding its address; refused while a server owns
    /// the store. Nothing is written unless every lease is understood (or --skip-refused).
    DhcpdLeases {
        /// The dhcpd.leases file.
        file: std::path::PathBuf,
        /// The xdhcp config whose store (`state_dir`) and subnets receive the leases.
        #[arg(long)]
        config: std::path::PathBuf,
        /// Write the leases that can be imported when some cannot (each is listed).
        #[arg(long)]
        skip_refused: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum FailoverCmd {
    /// Both servers' states, STOS, MCLT, unacknowledged updates and who owns how much of each
    /// shared pool.
    Status {
        #[arg(long)]
        json: bool,
        /// Only this relationship (default: every one).
        #[arg(long)]
        relationship: Option<String>,
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: std::path::PathBuf,
    },
    /// Declare the partner down (draft-12 PARTNER-DOWN): this server serves every client, and
    /// after MCLT (STOS+MCLT) also the partner's free addresses. Only when the partner is
    /// known to be down, not merely unreachable: two servers in PARTNER-DOWN can give one
    /// address to two clients.
    PartnerDown {
        /// Required: you checked that the partner is not serving clients.
        #[arg(long)]
        yes_partner_is_down: bool,
        /// The relationship whose partner is down; required when there are several.
        #[arg(long)]
        relationship: Option<String>,
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: std::path::PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum MapsCmd {
    /// Decode the lease map (and control and subnets) into a table.
    Dump {
        #[arg(long)]
        iface: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum LeaseCmd {
    Put(LeasePut),
    Del {
        #[arg(long)]
        iface: String,
        #[arg(long)]
        addr: Ipv4Addr,
    },
}

#[derive(Args, Debug)]
pub struct LeasePut {
    #[arg(long)]
    pub iface: String,
    #[arg(long)]
    pub addr: Ipv4Addr,
    /// Client hardware address, aa:bb:cc:dd:ee:ff.
    #[arg(long)]
    pub mac: String,
    /// Option 61 value in hex (type byte included), e.g. 01aabbccddeeff.
    #[arg(long)]
    pub client_id: Option<String>,
    /// Option 82 value in hex (its sub-options), e.g. 0106706f72742d31 for circuit-id
    /// "port-1": renewals carrying option 82 are then answered only with this one.
    #[arg(long)]
    pub relay_info: Option<String>,
    #[arg(long, default_value_t = 3600)]
    pub lease_secs: u32,
    /// How long from now the kernel may grant (the committed horizon).
    #[arg(long, default_value_t = 7200)]
    pub grant_secs: u64,
    /// The reply profile its ACKs carry (`xdhcp subnet --index`).
    #[arg(long, alias = "subnet", default_value_t = 0)]
    pub profile: u32,
}

#[derive(Args, Debug)]
pub struct SubnetArgs {
    #[arg(long)]
    pub iface: String,
    /// The reply profile written (below 4096).
    #[arg(long, default_value_t = 0)]
    pub index: u32,
    #[arg(long)]
    pub server_id: Ipv4Addr,
    #[arg(long)]
    pub mask: Ipv4Addr,
    #[arg(long)]
    pub router: Vec<Ipv4Addr>,
    #[arg(long)]
    pub dns: Vec<Ipv4Addr>,
    #[arg(long)]
    pub domain: Option<String>,
    #[arg(long, default_value_t = 1800)]
    pub t1: u32,
    #[arg(long, default_value_t = 3150)]
    pub t2: u32,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("key").required(true).args(["addr", "mac", "circuit"])))]
#[command(group(clap::ArgGroup::new("source").required(true).args(["postgres", "file", "config"])))]
pub struct HistoryArgs {
    /// The events of this address.
    #[arg(long)]
    pub addr: Option<Ipv4Addr>,
    /// With --addr: only who held the address at this time (unix seconds, or UTC as
    /// 2026-12-02T14:00:00Z), if anyone did.
    #[arg(long)]
    pub at: Option<String>,
    /// The events of this client MAC (aa:bb:cc:dd:ee:ff).
    #[arg(long)]
    pub mac: Option<String>,
    /// The events on this line: the option 82 circuit-id as shown, or 0x and its hex.
    #[arg(long)]
    pub circuit: Option<String>,
    /// The fleet's database (a libpq key=value string or a postgresql:// URL).
    #[arg(long)]
    pub postgres: Option<String>,
    /// The table in it (`[history.postgres] table`).
    #[arg(long, default_value = crate::config::history::DEFAULT_TABLE)]
    pub table: String,
    /// A history file (its rotated files beside it, FILE.1 and on, are read too).
    #[arg(long)]
    pub file: Option<std::path::PathBuf>,
    /// The server's config: its [history.postgres] database when it has one, else its
    /// history files.
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
}
