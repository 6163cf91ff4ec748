//! The `dirtylimit` command line: see `dirtylimit --help`.
fn main() {
    println!("dirtylimit: command line under construction");
}
