//! Wire constants of Ethernet, IPv4, UDP and BOOTP/DHCP that both sides need.

pub const ETH_HLEN: usize = 14;
pub const VLAN_HLEN: usize = 4;
pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;
pub const IPV4_HLEN: usize = 20;
pub const IPPROTO_UDP: u8 = 17;
pub const UDP_HLEN: usize = 8;
pub const SERVER_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;

/// Offsets inside the BOOTP header.
pub const OP: usize = 0;
pub const HTYPE: usize = 1;
pub const HLEN: usize = 2;
pub const HOPS: usize = 3;
pub const XID: usize = 4;
pub const SECS: usize = 8;
pub const FLAGS: usize = 10;
pub const CIADDR: usize = 12;
pub const YIADDR: usize = 16;
pub const SIADDR: usize = 20;
pub const GIADDR: usize = 24;
pub const CHADDR: usize = 28;
pub const SNAME: usize = 44;
pub const SNAME_LEN: usize = 64;
pub const FILE: usize = 108;
pub const FILE_LEN: usize = 128;
pub const COOKIE: usize = 236;
/// Fixed header plus magic cookie: where options start.
pub const OPTIONS: usize = 240;
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];

pub const BOOTREQUEST: u8 = 1;
pub const BOOTREPLY: u8 = 2;
pub const HTYPE_ETHER: u8 = 1;

pub const OPT_PAD: u8 = 0;
pub const OPT_SUBNET_MASK: u8 = 1;
pub const OPT_ROUTER: u8 = 3;
pub const OPT_DNS: u8 = 6;
pub const OPT_DOMAIN_NAME: u8 = 15;
pub const OPT_REQUESTED_IP: u8 = 50;
pub const OPT_LEASE_TIME: u8 = 51;
pub const OPT_MESSAGE_TYPE: u8 = 53;
pub const OPT_SERVER_ID: u8 = 54;
pub const OPT_T1: u8 = 58;
pub const OPT_T2: u8 = 59;
pub const OPT_OVERLOAD: u8 = 52;
pub const OPT_PARAMETER_LIST: u8 = 55;
pub const OPT_MAX_MESSAGE_SIZE: u8 = 57;
pub const OPT_CLIENT_ID: u8 = 61;
pub const OPT_RELAY_AGENT: u8 = 82;
pub const OPT_END: u8 = 255;

pub const DHCPDISCOVER: u8 = 1;
pub const DHCPOFFER: u8 = 2;
pub const DHCPREQUEST: u8 = 3;
pub const DHCPDECLINE: u8 = 4;
pub const DHCPACK: u8 = 5;
pub const DHCPNAK: u8 = 6;
pub const DHCPRELEASE: u8 = 7;
pub const DHCPINFORM: u8 = 8;
