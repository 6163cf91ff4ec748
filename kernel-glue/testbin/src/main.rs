//! `dltest`: one static multi-call binary for the guest (FUSE servers, writers, fsx, scenarios,
//! the D-state monitor).

mod dmon;
mod fsx;
mod scenario;
mod server;
mod util;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = match args.split_first() {
        Some((c, r)) => (c.as_str(), r),
        None => ("", &[][..]),
    };
    let rc = match cmd {
        "serve" => server::main(rest),
        "fsx" => fsx::main(rest),
        "scenario" => scenario::main(rest),
        "dmon" => dmon::main(rest),
        "asuser" => scenario::asuser(rest),
        _ => {
            eprintln!("usage: dltest serve|fsx|scenario|dmon ...");
            2
        }
    };
    std::process::exit(rc);
}
