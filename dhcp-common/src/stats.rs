//! Outcome counters of the XDP program: exactly one is bumped per packet, so their sum is the
//! number of packets the program saw. `pass_*` passed the frame to the stack, `drop_*` dropped it
//! (policing, and nothing else).

macro_rules! stats {
    ($($(#[$doc:meta])* $name:ident = $label:literal,)*) => {
        /// Index into the per-CPU stats array.
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Stat { $($(#[$doc])* $name,)* }

        impl Stat {
            pub const ALL: &[Stat] = &[$(Stat::$name,)*];
            /// Stable `snake_case` name used by `xdhcp stats`, JSON and metrics.
            pub const fn name(self) -> &'static str {
                match self { $(Stat::$name => $label,)* }
            }
        }
    };
}

stats! {
    /// A DHCPACK was built and transmitted (`XDP_TX`).
    Ack = "ack",
    /// Not IPv4 (after up to two VLAN tags).
    PassNotIpv4 = "pass_not_ipv4",
    /// IPv4 with options (IHL > 5): left to the stack.
    PassIpOptions = "pass_ip_options",
    /// A fragment.
    PassFragment = "pass_fragment",
    /// Not UDP to port 67.
    PassNotDhcp = "pass_not_dhcp",
    /// A header or the options ran past the end of the frame.
    PassTruncated = "pass_truncated",
    /// Not a BOOTREQUEST over Ethernet (op/htype/hlen), or no magic cookie.
    PassNotBootRequest = "pass_not_bootrequest",
    /// No option 53, or one that is not DHCPREQUEST (DISCOVER, RELEASE, INFORM...).
    PassNotRequest = "pass_not_request",
    /// A REQUEST with option 50 or 54 or without ciaddr (SELECTING / INIT-REBOOT), with option
    /// 52, or with option 53, 57, 61 or 82 repeated.
    PassNotRenewal = "pass_not_renewal",
    /// The option scan hit its iteration cap before END.
    PassOptionCap = "pass_option_cap",
    /// No lease for ciaddr in the map.
    PassUnknownLease = "pass_unknown_lease",
    /// chaddr differs from the lease's.
    PassChaddrMismatch = "pass_chaddr_mismatch",
    /// Client identifier differs from the lease's (or is present/absent when it should not be,
    /// or is longer than the fast path compares).
    PassClientIdMismatch = "pass_client_id_mismatch",
    /// Option 82 longer than the fast path echoes (`maps::RELAY_INFO_MAX`).
    PassRelayInfoLong = "pass_relay_info_long",
    /// Option 82 on a lease whose recorded option 82 the slow path keeps (malformed, too long,
    /// or with link selection or a server identifier override).
    PassRelayInfoUnsupported = "pass_relay_info_unsupported",
    /// Option 82 other than the one the slow path last acknowledged the client with (a new
    /// circuit-id or remote-id), or on a lease with none on record.
    PassRelayInfoMismatch = "pass_relay_info_mismatch",
    /// What is left of the committed grant is below the floor or T1.
    PassGrantTooShort = "pass_grant_too_short",
    /// The control entry has the fast path switched off, or has no calibrated clock.
    PassDisabled = "pass_disabled",
    /// The lease's reply profile has no reply data.
    PassNoProfile = "pass_no_profile",
    /// The frame could not be resized to the ACK's length.
    PassResize = "pass_resize",
    /// This CPU's region of the event log was full: an ACK userspace would not hear of is not
    /// sent.
    PassEventLogFull = "pass_event_log_full",
    /// The ACK would be longer than the client accepts: 576 bytes of IP, or more if its option
    /// 57 says so (a long profile's ACK echoing option 82). New counters go last: another
    /// build's object (`bench fastpath --compare`) keeps the indexes it shares with this one.
    PassReplyTooLong = "pass_reply_too_long",
    /// Dropped: the client MAC's bucket was empty (`dhcp_common::police`).
    DropPolicedMac = "drop_policed_mac",
    /// Dropped: the access port's bucket (relay and option 82) was empty.
    DropPolicedPort = "drop_policed_port",
    /// Dropped: the VLAN's bucket was empty.
    DropPolicedVlan = "drop_policed_vlan",
    /// Dropped: the interface's bucket was empty.
    DropPolicedInterface = "drop_policed_interface",
}

impl Stat {
    /// The counters of messages policing dropped, one per key kind.
    pub const POLICED: [Stat; 4] = [
        Stat::DropPolicedMac,
        Stat::DropPolicedPort,
        Stat::DropPolicedVlan,
        Stat::DropPolicedInterface,
    ];
}

#[expect(clippy::cast_possible_truncation, reason = "a few dozen variants")]
pub const STATS_LEN: u32 = Stat::ALL.len() as u32;
