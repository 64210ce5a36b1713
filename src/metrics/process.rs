//! What the process holds that `/proc` can tell and the Prometheus process
//! collector does not: its UDP sockets (every PeerConnection binds some,
//! the media library's relays more), so a leak of sockets shows as a
//! number that does not come back down. Read at each scrape.

use std::collections::HashSet;

/// UDP sockets (IPv4 and IPv6) among this process's open file descriptors;
/// `None` where `/proc` cannot be read (not Linux, or a sandbox).
pub fn udp_sockets() -> Option<usize> {
    let mut udp = HashSet::new();
    let mut any_table = false;
    for table in ["/proc/self/net/udp", "/proc/self/net/udp6"] {
        if let Ok(text) = std::fs::read_to_string(table) {
            any_table = true;
            udp.extend(socket_inodes(&text));
        }
    }
    if !any_table {
        return None;
    }
    let fds = std::fs::read_dir("/proc/self/fd").ok()?;
    let count = fds
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|target| fd_socket_inode(&target.to_string_lossy()))
        .filter(|inode| udp.contains(inode))
        .count();
    Some(count)
}

/// The inode column of a `/proc/net/udp` table (header line skipped).
fn socket_inodes(table: &str) -> impl Iterator<Item = u64> + '_ {
    // Columns: sl local_address rem_address st tx_queue:rx_queue tr:tm->when
    // retrnsmt uid timeout inode ...
    table
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().nth(9)?.parse().ok())
}

/// `socket:[12345]` (what `/proc/self/fd/N` links to for a socket) → 12345.
fn fd_socket_inode(target: &str) -> Option<u64> {
    target
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_udp_table_and_fd_links() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
  123: 0100007F:9C40 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 424242 2 0000000000000000 0\n";
        assert_eq!(socket_inodes(table).collect::<Vec<_>>(), [424242]);
        assert_eq!(fd_socket_inode("socket:[424242]"), Some(424242));
        assert_eq!(fd_socket_inode("pipe:[7]"), None);
        assert_eq!(fd_socket_inode("/dev/null"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn counts_a_socket_while_it_is_open() {
        let before = udp_sockets().expect("/proc readable on Linux");
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind a loopback UDP socket");
        // Other tests of this process may open or close sockets meanwhile:
        // only this socket's own inode is certain.
        let during = udp_sockets().expect("/proc readable");
        drop(socket);
        assert!(during >= 1, "no UDP socket counted (before {before})");
    }
}
