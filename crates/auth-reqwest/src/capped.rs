//! Reading an answer from outside with a cap (a discovery document, a
//! registration answer, an endpoint's error): an endless or huge body is
//! refused before it fills memory; the request's own timeout is the
//! deadline.

/// Why a capped body was not read.
#[derive(Debug)]
pub enum CappedError {
    /// It is (or says it is) larger than the cap.
    TooLarge,
    /// Reading it failed.
    Failed(reqwest::Error),
}

/// The body of `response`, refused past `max` bytes (at once when its
/// `Content-Length` says so) without reading further.
pub async fn read_capped(response: &mut reqwest::Response, max: usize) -> Result<Vec<u8>, CappedError> {
    if response.content_length().is_some_and(|length| length > max as u64) {
        return Err(CappedError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(CappedError::Failed)? {
        if body.len() + chunk.len() > max {
            return Err(CappedError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// A server that answers once with `head` and `body_len` bytes of body.
    async fn answer(head: &'static str, body_len: usize) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 1024];
            let _ = socket.read(&mut request).await;
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.write_all(&vec![b'a'; body_len]).await;
        });
        url
    }

    #[tokio::test]
    async fn a_body_past_the_cap_is_refused_whether_or_not_its_length_is_said() {
        let said = answer("HTTP/1.1 200 OK\r\ncontent-length: 70000\r\nconnection: close\r\n\r\n", 70_000).await;
        let mut response = reqwest::get(&said).await.unwrap();
        assert!(matches!(read_capped(&mut response, 64 * 1024).await, Err(CappedError::TooLarge)));
        let unsaid = answer("HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n", 70_000).await;
        let mut response = reqwest::get(&unsaid).await.unwrap();
        assert!(matches!(read_capped(&mut response, 64 * 1024).await, Err(CappedError::TooLarge)));
        let small = answer("HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n", 1_000).await;
        let mut response = reqwest::get(&small).await.unwrap();
        assert_eq!(read_capped(&mut response, 64 * 1024).await.unwrap().len(), 1_000);
    }
}
