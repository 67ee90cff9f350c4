//! `ebb stand-in`: the local stand-in for Enterpret and for a profiles API, until Ctrl-C.

use std::net::SocketAddr;
use std::process::ExitCode;

use crate::error::Error;
use crate::standin::{StandIn, StandInConfig};

pub(super) async fn stand_in(addr: SocketAddr, config: StandInConfig) -> Result<ExitCode, Error> {
    let server = StandIn::start(addr, config).await.map_err(|source| Error::Io {
        context: format!("stand-in cannot listen on {addr}"),
        source,
    })?;
    println!("stand-in for Enterpret and for profiles listening on {}", server.url());
    println!("  Enterpret: POST /webhook/users/custom, /webhook/accounts/custom · GET /records/users, /records/accounts");
    println!("  profiles:  POST /users/import, DELETE /users/{{email}} · GET /records/profiles");
    println!("  both:      GET /stats, /requests");
    let _ = tokio::signal::ctrl_c().await;
    server.stop().await;
    Ok(ExitCode::SUCCESS)
}
