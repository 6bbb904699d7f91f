/* listener.h - the TCP listeners (c2s on 5222). */
#ifndef HERALD_LISTENER_H
#define HERALD_LISTENER_H

struct herald;

/* Binds and listens on cfg->c2s_bind:c2s_port. Returns 0 or HERALD_E* (logged). */
int listener_start(struct herald *h);
/* Stops accepting (shutdown). */
void listener_stop(struct herald *h);

#endif
