package conjur

import "context"

// Ping checks that Conjur answers the plugin's own identity now: one
// authenticated request (whoami), through the session like a fetch:
// FetchTimeout, TLS settings, follower failover, authentication when no
// token is held. It records the contact (or the error) for Status, and,
// with a credential file, the credential's first use. The per-request
// identity mode has no identity of its own to ask as: Ping answers
// NO_CREDENTIAL there.
func (c *Client) Ping(ctx context.Context) error {
	err := c.sess.metadata(ctx, "", func(api apiOps) error {
		_, err := api.whoAmI()
		return err
	})
	c.status.failure(err)
	return err
}
