//! The control socket protocol between the mip-ha daemon and ha-admin.
