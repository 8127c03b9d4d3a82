//! Property tests of `mip_core::dataplane`: round trips, and no panic on any bytes.
#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;

use mip_core::dataplane::arp::{ArpOp, ArpRepr};
use mip_core::dataplane::ipv4::{self, Fragmenter, Ipv4Fields};
use mip_core::dataplane::offload::{complete_checksum, TcpSegmenter, VnetHdr};
use mip_core::dataplane::{
    decapsulate, encapsulate, ethernet, icmp_error, packets, EncapOutcome, Encapsulation, TunnelParams,
    ENCAP_BUFFER_LEN,
};
use proptest::prelude::*;

fn addr() -> impl Strategy<Value = Ipv4Addr> {
    // Unicast lab addresses: 198.18.0.0/15.
    (0u32..(1 << 17)).prop_map(|n| Ipv4Addr::from(0xc612_0000u32 | n))
}

fn kind() -> impl Strategy<Value = Encapsulation> {
    prop_oneof![Just(Encapsulation::IpInIp), Just(Encapsulation::Minimal), Just(Encapsulation::Gre)]
}

prop_compose! {
    fn packet()(src in addr(), dst in addr(), tos in any::<u8>(), id in any::<u16>(), df in any::<bool>(),
                ttl in 2u8.., protocol in any::<u8>(), payload in proptest::collection::vec(any::<u8>(), 0..1600))
                -> Vec<u8> {
        let total = 20 + payload.len();
        let mut p = vec![0u8; total];
        ipv4::write_header(&mut p, &Ipv4Fields { tos, total_len: total as u16, identification: id,
            dont_fragment: df, more_fragments: false, fragment_offset: 0, ttl, protocol, src, dst }).unwrap();
        p[20..].copy_from_slice(&payload);
        p
    }
}

proptest! {
    #[test]
    fn encapsulate_then_decapsulate_gives_the_forwarded_packet(
        kind in kind(), pkt in packet(), ha in addr(), coa in addr(), mtu in 576u16..=1500, forwarding in any::<bool>()
    ) {
        let inner = ipv4::parse(&pkt).unwrap();
        prop_assume!(inner.src != ha && inner.src != coa);
        let p = TunnelParams { tunnel_mtu: mtu, outer_ttl: 64, forwarding, identification: 9 };
        let mut out = vec![0u8; ENCAP_BUFFER_LEN];
        let mut back = vec![0u8; 65_536];
        let mut expected = pkt.clone();
        if forwarding {
            ipv4::set_ttl(&mut expected, 20, inner.ttl - 1).unwrap();
        }
        match encapsulate(kind, &pkt, ha, coa, &p, &mut out) {
            EncapOutcome::Encapsulated { len } => {
                prop_assert!(len <= usize::from(mtu));
                let o = ipv4::parse(&out[..len]).unwrap();
                prop_assert_eq!(o.dont_fragment, inner.dont_fragment);
                prop_assert_eq!(o.tos, inner.tos);
                let d = decapsulate(&out[..len], &mut back).unwrap();
                prop_assert_eq!((d.kind, d.outer_src, d.outer_dst), (kind, ha, coa));
                prop_assert_eq!(&back[..d.inner_len], &expected[..]);
            }
            EncapOutcome::FragmentationNeeded { next_hop_mtu } => {
                prop_assert!(inner.dont_fragment);
                prop_assert!(pkt.len() > usize::from(next_hop_mtu));
                prop_assert!(pkt.len() + kind.overhead(true) > usize::from(mtu));
            }
            EncapOutcome::Fragmented { len, count } => {
                prop_assert!(!inner.dont_fragment);
                let all: Vec<&[u8]> = packets(&out[..len]).collect();
                prop_assert_eq!(all.len(), count);
                prop_assert!(count >= 2);
                prop_assert!(all.iter().all(|f| f.len() <= usize::from(mtu)));
            }
            EncapOutcome::Dropped(r) => prop_assert!(false, "dropped: {:?}", r),
        }
    }

    #[test]
    fn fragments_cover_the_payload_exactly(pkt in packet(), mtu in 68usize..1500) {
        let info = ipv4::parse(&pkt).unwrap();
        let mut f = Fragmenter::new(&pkt[..20], &[], &pkt[20..], mtu).unwrap();
        let mut out = vec![0u8; 1600];
        let mut next = 0usize;
        let mut last_mf = true;
        while let Some(r) = f.next_into(&mut out) {
            let n = r.unwrap();
            prop_assert!(n <= mtu);
            let i = ipv4::parse(&out[..n]).unwrap();
            prop_assert_eq!(usize::from(i.fragment_offset), next);
            prop_assert_eq!(&out[20..n], &pkt[20 + next..20 + next + n - 20]);
            prop_assert_eq!(i.identification, info.identification);
            next += n - 20;
            last_mf = i.more_fragments;
        }
        prop_assert_eq!(next, pkt.len() - 20);
        prop_assert!(!last_mf);
    }

    #[test]
    fn arp_round_trips(op in any::<u16>(), sm in any::<[u8; 6]>(), si in any::<[u8; 4]>(), tm in any::<[u8; 6]>(), ti in any::<[u8; 4]>()) {
        let r = ArpRepr { operation: ArpOp::from(op), sender_mac: sm, sender_ip: si.into(), target_mac: tm, target_ip: ti.into() };
        let mut out = [0u8; 28];
        r.emit(&mut out).unwrap();
        prop_assert_eq!(ArpRepr::parse(&out).unwrap(), r);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), small in 0usize..80, mtu in any::<u16>()) {
        let mut out = vec![0u8; small];
        let mut big = vec![0u8; 4096];
        let _ = ipv4::parse(&bytes);
        let _ = decapsulate(&bytes, &mut out);
        let _ = decapsulate(&bytes, &mut big);
        for kind in [Encapsulation::IpInIp, Encapsulation::Minimal, Encapsulation::Gre] {
            let p = TunnelParams { tunnel_mtu: mtu, ..TunnelParams::default() };
            let _ = encapsulate(kind, &bytes, Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 1, 1), &p, &mut out);
            let _ = encapsulate(kind, &bytes, Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 1, 1), &p, &mut big);
        }
        let _ = icmp_error::fragmentation_needed(&bytes, Ipv4Addr::new(198, 18, 0, 1), mtu, &mut out);
        let _ = icmp_error::time_exceeded(&bytes, Ipv4Addr::new(198, 18, 0, 1), &mut big);
        let _ = ArpRepr::parse(&bytes);
        let _ = ethernet::parse(&bytes);
        let _ = packets(&bytes).count();
        let _ = VnetHdr::parse(&bytes);
        let mut m = bytes.clone();
        let _ = complete_checksum(&mut m, small, small % 20);
        if let Ok(mut s) = TcpSegmenter::new(&bytes, mtu) {
            let mut n = 0;
            while let Some(r) = s.next_into(&mut big) {
                if r.is_err() || n > 70_000 { break; }
                n += 1;
            }
        }
        if bytes.len() >= 20 {
            if let Ok(mut f) = Fragmenter::new(&bytes[..20], &[], &bytes[20..], usize::from(mtu)) {
                while let Some(r) = f.next_into(&mut out) { if r.is_err() { break; } }
            }
        }
    }

    #[test]
    fn decapsulate_never_panics_on_mutated_tunnel_packets(kind in kind(), pkt in packet(), flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4)) {
        let mut out = vec![0u8; ENCAP_BUFFER_LEN];
        let p = TunnelParams { forwarding: false, ..TunnelParams::default() };
        if let EncapOutcome::Encapsulated { len } = encapsulate(kind, &pkt, Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 1, 1), &p, &mut out) {
            let mut t = out[..len].to_vec();
            for (at, x) in flips { let i = at % t.len(); t[i] ^= x; }
            // Keep the outer checksum right so the inner parts are exercised.
            let hl = usize::from(t[0] & 0x0f) * 4;
            if t[0] >> 4 == 4 && hl >= 20 && hl <= t.len() { let _ = ipv4::fill_checksum(&mut t, hl); }
            let mut back = vec![0u8; 2048];
            let _ = decapsulate(&t, &mut back);
        }
    }
}
