"""iTEP orders, shared by the admin API and the fulfillment worker: iTEP's rules for an order
(`validation`) and the orders' tables (`orders`)."""
