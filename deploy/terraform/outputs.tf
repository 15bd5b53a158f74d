output "public_ips" {
  value = [for ip in azurerm_public_ip.node : ip.ip_address]
}

output "members" {
  description = "The static member list every instance was started with."
  value       = local.members
}
