//! `mip-fa`: the foreign agent daemon. All of it lives in [`mip_fa::daemon`] so that it
//! can be tested as a library.

fn main() -> std::process::ExitCode {
    mip_fa::daemon::main()
}
