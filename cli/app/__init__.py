"""The appliance: everything above the BGP library, wired into ``l3fab run``.

``speaker/`` is a BGP library, ``fib/`` a kernel FIB library, ``tenancy/`` the intent
and ``dataplane/`` the packet path; none of them imports another's application code.
This package is where they meet: the kernel FIB feed and the tenant plane as Loc-RIB
consumers, the VRF import, the tenant API methods, and the daemon that assembles them.
"""
