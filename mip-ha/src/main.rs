//! `mip-ha`: the home agent daemon. All of it lives in [`mip_ha::daemon`] so that it
//! can be tested as a library.

fn main() -> std::process::ExitCode {
    mip_ha::daemon::main()
}
