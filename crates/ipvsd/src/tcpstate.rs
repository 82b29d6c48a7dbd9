//! The kernel's TCP connection states for IPVS (`ip_vs_proto_tcp.c`): the state table driven by
//! the segments it sees (SYN, FIN, ACK, RST, from the client = input or from the real server =
//! output), which states count as active, their names and timeouts.
//!
//! The proxy sees socket events, not segments; [`Event`] maps each to the segments the kernel
//! would have seen for it, so that ActiveConn/InActConn, `ipvsadm -c` and the timeouts follow
//! the kernel's rules.

use ipvs::Timeouts;

/// `IP_VS_TCP_S_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    None,
    Established,
    SynSent,
    SynRecv,
    FinWait,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    SynAck,
}

use State::*;

const ORDER: [State; 11] = [
    None,
    Established,
    SynSent,
    SynRecv,
    FinWait,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    SynAck,
];

/// A segment's kind, as `tcp_state_idx` classifies it (RST before SYN before FIN before ACK).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seg {
    Syn,
    Fin,
    Ack,
    Rst,
}

/// Who sent the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Client to real server.
    Input,
    /// Real server to client (masquerading sees both directions).
    Output,
}

const S_ES: State = Established;
const S_SS: State = SynSent;
const S_SR: State = SynRecv;
const S_FW: State = FinWait;
const S_TW: State = TimeWait;
const S_CL: State = Close;
const S_CW: State = CloseWait;
const S_LA: State = LastAck;
const S_LI: State = Listen;

/// `tcp_states` (not the secure_tcp table), INPUT then OUTPUT rows: syn, fin, ack, rst; columns
/// in [`ORDER`].
const TABLE: [[State; 11]; 8] = [
    // INPUT
    [
        S_SR, S_ES, S_ES, S_SR, S_SR, S_SR, S_SR, S_SR, S_SR, S_SR, S_SR,
    ],
    [
        S_CL, S_CW, S_SS, S_TW, S_TW, S_TW, S_CL, S_CW, S_LA, S_LI, S_TW,
    ],
    [
        S_ES, S_ES, S_SS, S_ES, S_FW, S_TW, S_CL, S_CW, S_CL, S_LI, S_ES,
    ],
    [
        S_CL, S_CL, S_CL, S_SR, S_CL, S_CL, S_CL, S_CL, S_LA, S_LI, S_SR,
    ],
    // OUTPUT
    [
        S_SS, S_ES, S_SS, S_SR, S_SS, S_SS, S_SS, S_SS, S_SS, S_LI, S_SR,
    ],
    [
        S_TW, S_FW, S_SS, S_TW, S_FW, S_TW, S_CL, S_TW, S_LA, S_LI, S_TW,
    ],
    [
        S_ES, S_ES, S_SS, S_ES, S_FW, S_TW, S_CL, S_CW, S_LA, S_ES, S_ES,
    ],
    [
        S_CL, S_CL, S_SS, S_CL, S_CL, S_TW, S_CL, S_CL, S_CL, S_CL, S_CL,
    ],
];

impl State {
    fn index(self) -> usize {
        ORDER
            .iter()
            .position(|s| *s == self)
            .expect("every state is listed")
    }

    /// The state after a segment.
    pub fn next(self, dir: Dir, seg: Seg) -> State {
        let row = match dir {
            Dir::Input => 0,
            Dir::Output => 4,
        } + match seg {
            Seg::Syn => 0,
            Seg::Fin => 1,
            Seg::Ack => 2,
            Seg::Rst => 3,
        };
        TABLE[row][self.index()]
    }

    /// `tcp_state_active_table`: ESTABLISHED, SYN_SENT, SYN_RECV and SYNACK count as active.
    pub fn active(self) -> bool {
        matches!(self, Established | SynSent | SynRecv | SynAck)
    }

    /// `tcp_state_name_table`.
    pub fn name(self) -> &'static str {
        match self {
            None => "NONE",
            Established => "ESTABLISHED",
            SynSent => "SYN_SENT",
            SynRecv => "SYN_RECV",
            FinWait => "FIN_WAIT",
            TimeWait => "TIME_WAIT",
            Close => "CLOSE",
            CloseWait => "CLOSE_WAIT",
            LastAck => "LAST_ACK",
            Listen => "LISTEN",
            SynAck => "SYNACK",
        }
    }

    /// `tcp_timeouts` in seconds, with the tunable ones (`--set`) from `t`.
    pub fn timeout(self, t: &Timeouts) -> u32 {
        match self {
            None => 2,
            Established => t.tcp,
            SynSent => 120,
            SynRecv => 60,
            FinWait => t.tcp_fin,
            TimeWait => 120,
            Close => 10,
            CloseWait => 60,
            LastAck => 30,
            Listen => 120,
            SynAck => 120,
        }
    }
}

/// What the proxy observes on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A client connection accepted (its SYN).
    Accepted,
    /// The connection to the real server is up (its SYN-ACK, the client's ACK).
    Connected,
    /// The client sent FIN (read end of file; the real server's ACK follows).
    ClientFin,
    /// The real server sent FIN (the client's ACK follows).
    ServerFin,
    /// The client reset the connection.
    ClientRst,
    /// The real server reset or refused the connection.
    ServerRst,
}

/// The segments the kernel would have seen for an event.
pub fn segments(e: Event) -> &'static [(Dir, Seg)] {
    match e {
        Event::Accepted => &[(Dir::Input, Seg::Syn)],
        Event::Connected => &[(Dir::Output, Seg::Syn), (Dir::Input, Seg::Ack)],
        Event::ClientFin => &[(Dir::Input, Seg::Fin), (Dir::Output, Seg::Ack)],
        Event::ServerFin => &[(Dir::Output, Seg::Fin), (Dir::Input, Seg::Ack)],
        Event::ClientRst => &[(Dir::Input, Seg::Rst)],
        Event::ServerRst => &[(Dir::Output, Seg::Rst)],
    }
}

/// The state after an event.
pub fn after(state: State, e: Event) -> State {
    segments(e)
        .iter()
        .fold(state, |s, &(dir, seg)| s.next(dir, seg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(events: &[Event]) -> Vec<State> {
        let mut s = State::None;
        events
            .iter()
            .map(|&e| {
                s = after(s, e);
                s
            })
            .collect()
    }

    #[test]
    fn a_normal_connection() {
        use Event::*;
        // Server closes first (HTTP/1.0): FIN_WAIT, then TIME_WAIT once the client closes.
        assert_eq!(
            run(&[Accepted, Connected, ServerFin, ClientFin]),
            vec![SynRecv, Established, FinWait, TimeWait]
        );
        // Client closes first: CLOSE_WAIT, then TIME_WAIT.
        assert_eq!(
            run(&[Accepted, Connected, ClientFin, ServerFin]),
            vec![SynRecv, Established, CloseWait, TimeWait]
        );
        // Refused by the real server.
        assert_eq!(run(&[Accepted, ServerRst]), vec![SynRecv, Close]);
        assert_eq!(
            run(&[Accepted, Connected, ClientRst]),
            vec![SynRecv, Established, Close]
        );
    }

    #[test]
    fn activity_and_timeouts() {
        let t = Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300,
        };
        assert!(SynRecv.active() && Established.active());
        assert!(!FinWait.active() && !TimeWait.active() && !CloseWait.active() && !Close.active());
        assert_eq!(Established.timeout(&t), 900);
        assert_eq!(FinWait.timeout(&t), 120);
        assert_eq!(TimeWait.timeout(&t), 120);
        assert_eq!(Close.timeout(&t), 10);
        assert_eq!(CloseWait.timeout(&t), 60);
        assert_eq!(Established.name(), "ESTABLISHED");
    }

    #[test]
    fn table_spot_checks() {
        // A few cells read off the kernel's table.
        assert_eq!(None.next(Dir::Input, Seg::Syn), SynRecv);
        assert_eq!(SynRecv.next(Dir::Input, Seg::Rst), SynRecv);
        assert_eq!(TimeWait.next(Dir::Output, Seg::Rst), TimeWait);
        assert_eq!(LastAck.next(Dir::Input, Seg::Ack), Close);
        assert_eq!(Listen.next(Dir::Output, Seg::Ack), Established);
        assert_eq!(SynAck.next(Dir::Input, Seg::Fin), TimeWait);
        assert_eq!(CloseWait.next(Dir::Output, Seg::Fin), TimeWait);
    }
}
