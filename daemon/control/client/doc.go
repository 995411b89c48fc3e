// Package client is the client of lockstepd's admin API on D-Bus, the one
// lockstepctl uses: Connect opens a bus, New binds a Client to the
// lockstepd that owns api.BusName on it, and each method of Client is one
// method of the API (one lockstepctl verb), answering the documents of
// package api. Error replies come back as *RemoteError values that
// errors.Is matches against api's sentinels; Follow delivers the Event
// signal. It links package api and the D-Bus library only, never the
// server (package control) or the daemon's core: the layering test holds
// lockstepctl to that.
package client
