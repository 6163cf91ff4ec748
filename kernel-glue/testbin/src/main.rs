//! `dltest`: one static multi-call binary for the guest (FUSE servers, writers, fsx, scenarios).

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
        "fsxbench" => scenario::fsxbench(rest),
        _ => {
            eprintln!("usage: dltest serve|fsx|scenario ...");
            2
        }
    };
    std::process::exit(rc);
}
