//! The network seam's simulated side: tonic channels and servers over
//! turmoil's TCP, so the real tonic, hyper and h2 code runs on it.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper_util::rt::TokioIo;
use raftwatch_proto::net::{BoxIo, Dialer, Incoming};
use tonic::transport::{Endpoint, Uri};

/// `dialer` connects over the simulated network.
pub fn dialer() -> Dialer {
    Arc::new(|endpoint: &Endpoint| {
        endpoint.connect_with_connector_lazy(tower::service_fn(|uri: Uri| async move {
            let host = uri.host().unwrap_or_default().to_owned();
            let port = uri.port_u16().unwrap_or(crate::params::PORT);
            let stream = turmoil::net::TcpStream::connect((host.as_str(), port)).await?;
            Ok::<_, io::Error>(TokioIo::new(stream))
        }))
    })
}

/// `incoming` listens on `port` of the current simulated host.
pub async fn incoming(port: u16) -> io::Result<(Incoming, SocketAddr)> {
    let listener = turmoil::net::TcpListener::bind(("0.0.0.0", port)).await?;
    let addr = listener.local_addr()?;
    let stream = futures::stream::unfold(listener, |l| async move {
        let next = l.accept().await.map(|(s, _)| BoxIo::new(s));
        Some((next, l))
    });
    Ok((Box::pin(stream), addr))
}

/// `webhook_connector` opens notification deliveries' connections over
/// the simulated network.
pub fn webhook_connector() -> raftwatch::node::webhook::Connector {
    Arc::new(|addr: String| {
        Box::pin(async move {
            let (host, port) = addr
                .rsplit_once(':')
                .and_then(|(h, p)| p.parse::<u16>().ok().map(|p| (h.to_owned(), p)))
                .ok_or_else(|| io::Error::other(format!("bad address {addr}")))?;
            let stream = turmoil::net::TcpStream::connect((host.as_str(), port)).await?;
            Ok(BoxIo::new(stream))
        })
    })
}
