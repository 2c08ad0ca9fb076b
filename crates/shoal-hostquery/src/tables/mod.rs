//! The host tables, one file each. Every file has the same shape: a unit struct named after
//! the table, an `impl HostTable` with osquery's name and columns, and the function that
//! reads the host. To add a table, add a file and a line to [`ALL`].

use crate::table::TableDef;

pub mod authorized_keys;
pub mod block_devices;
pub mod cpu_info;
pub mod crontab;
pub mod deb_packages;
pub mod docker_containers;
pub mod etc_hosts;
pub mod file;
pub mod file_lines;
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
pub mod nginx_access;
pub mod os_version;
pub mod osquery_info;
pub mod process_open_sockets;
pub mod processes;
pub mod routes;
pub mod system_info;
pub mod systemd_units;
pub mod time;
pub mod uptime;
pub mod user_ssh_keys;
pub mod users;

/// Every table a query can use.
pub static ALL: &[&dyn TableDef] = &[
    &authorized_keys::AuthorizedKeys,
    &block_devices::BlockDevices,
    &cpu_info::CpuInfo,
    &crontab::Crontab,
    &deb_packages::DebPackages,
    &docker_containers::DockerContainers,
    &etc_hosts::EtcHosts,
    &file::File,
    &file_lines::FileLines,
    &groups::Groups,
    &hash::Hash,
    &interface_addresses::InterfaceAddresses,
    &interface_details::InterfaceDetails,
    &kernel_info::KernelInfo,
    &listening_ports::ListeningPorts,
    &load_average::LoadAverage,
    &logged_in_users::LoggedInUsers,
    &memory_info::MemoryInfo,
    &mounts::Mounts,
    &nginx_access::NginxAccess,
    &os_version::OsVersion,
    &osquery_info::OsqueryInfo,
    &process_open_sockets::ProcessOpenSockets,
    &processes::Processes,
    &routes::Routes,
    &system_info::SystemInfo,
    &systemd_units::SystemdUnits,
    &time::Time,
    &uptime::Uptime,
    &user_ssh_keys::UserSshKeys,
    &users::Users,
];
