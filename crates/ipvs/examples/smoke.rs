//! Exercises the kernel backend end to end (run as root on a kernel with IPVS):
//! `cargo run -p ipvs --example smoke`.
use ipvs::*;
use std::net::IpAddr;

fn main() {
    let mut b = match ipvs::open() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("open: {e}");
            std::process::exit(2);
        }
    };
    println!("info: {:?}", b.info());
    println!("timeouts: {:?}", b.timeouts());
    let id = ServiceId::Address {
        protocol: Protocol::Tcp,
        addr: "10.0.0.1".parse().unwrap(),
        port: 80,
    };
    let mut s = Service::new(id);
    s.scheduler = "rr".into();
    println!("add: {:?}", b.apply(&Change::AddService(s.clone())));
    println!(
        "add again: {:?}",
        b.apply(&Change::AddService(s.clone()))
            .map_err(|e| e.message())
    );
    let mut d = Destination::new("10.1.0.1".parse::<IpAddr>().unwrap(), 80);
    d.forward = ForwardMethod::Masq;
    d.weight = 3;
    println!(
        "add dest: {:?}",
        b.apply(&Change::AddDestination(id, d.clone()))
    );
    s.flags = flags::PERSISTENT;
    s.timeout = 300;
    s.netmask = 0xffffff00;
    println!("edit: {:?}", b.apply(&Change::EditService(s.clone())));
    println!("service: {:?}", b.service(&id));
    println!("dests: {:?}", b.destinations(&id));
    let fw = ServiceId::Fwmark {
        family: Family::Inet6,
        mark: 7,
    };
    println!(
        "add fwmark6: {:?}",
        b.apply(&Change::AddService(Service::new(fw)))
    );
    let mut changes = Vec::new();
    for i in 0..2000u32 {
        let id = ServiceId::Address {
            protocol: Protocol::Udp,
            addr: IpAddr::V4(std::net::Ipv4Addr::from(0x0a02_0000 + i)),
            port: 53,
        };
        changes.push(Change::AddService(Service::new(id)));
        changes.push(Change::AddDestination(
            id,
            Destination::new("10.3.0.1".parse().unwrap(), 53),
        ));
    }
    changes.push(Change::AddService(Service::new(id)));
    let t = std::time::Instant::now();
    let r = b.apply_all(&changes);
    println!(
        "batch: {} ok, {} failed ({:?}), {:?}",
        r.iter().filter(|x| x.is_ok()).count(),
        r.iter().filter(|x| x.is_err()).count(),
        r.iter()
            .filter_map(|x| x.as_ref().err())
            .map(|e| e.message())
            .next(),
        t.elapsed()
    );
    let t = std::time::Instant::now();
    let table = b.table().unwrap();
    println!(
        "table: {} services, {} dests, {:?}",
        table.len(),
        table.iter().map(|e| e.destinations.len()).sum::<usize>(),
        t.elapsed()
    );
    println!(
        "del missing: {:?}",
        b.apply(&Change::DeleteService(ServiceId::Fwmark {
            family: Family::Inet,
            mark: 99
        }))
        .map_err(|e| e.message())
    );
    println!(
        "dest on missing: {:?}",
        b.apply(&Change::AddDestination(
            ServiceId::Fwmark {
                family: Family::Inet,
                mark: 99
            },
            d
        ))
        .map_err(|e| e.message())
    );
    println!(
        "sched missing: {:?}",
        b.apply(&Change::AddService(Service {
            scheduler: "nope".into(),
            ..Service::new(ServiceId::Fwmark {
                family: Family::Inet,
                mark: 98
            })
        }))
        .map_err(|e| e.message())
    );
    println!("daemons: {:?}", b.daemons());
    println!("flush: {:?}", b.apply(&Change::Flush));
    println!("after flush: {:?}", b.services().map(|s| s.len()));
}
