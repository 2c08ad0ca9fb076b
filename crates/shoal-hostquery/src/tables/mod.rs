//! The host tables, one file each. Every file has the same shape: a unit struct named after
//! the table, an `impl HostTable` with osquery's name and columns, and the function that
//! reads the host. To add a table, add a file and a line to [`ALL`].

use crate::table::TableDef;

pub mod authorized_keys;
pub mod cpu_info;
pub mod etc_hosts;
pub mod file;
pub mod groups;
pub mod hash;
pub mod interface_addresses;
pub mod interface_details;
pub mod kernel_info;
pub mod listening_ports;
pub mod load_average;
pub mod logged_in_users;
pub mod memory_info;
pub mod mounts;
pub mod os_version;
pub mod osquery_info;
pub mod process_open_sockets;
pub mod processes;
pub mod system_info;
pub mod time;
pub mod uptime;
pub mod user_ssh_keys;
pub mod users;

/// Every table a query can use.
pub static ALL: &[&dyn TableDef] = &[
    &cpu_info::CpuInfo,
    &etc_hosts::EtcHosts,
    &file::File,
    &groups::Groups,
    &hash::Hash,
    &kernel_info::KernelInfo,
    &listening_ports::ListeningPorts,
    &load_average::LoadAverage,
    &memory_info::MemoryInfo,
    &mounts::Mounts,
    &os_version::OsVersion,
    &osquery_info::OsqueryInfo,
    &process_open_sockets::ProcessOpenSockets,
    &processes::Processes,
    &system_info::SystemInfo,
    &time::Time,
    &uptime::Uptime,
    &users::Users,
    &user_ssh_keys::UserSshKeys,
    &logged_in_users::LoggedInUsers,
    &interface_details::InterfaceDetails,
    &interface_addresses::InterfaceAddresses,
    &authorized_keys::AuthorizedKeys,
];
