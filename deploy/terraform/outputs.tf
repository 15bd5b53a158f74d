output "public_ips" {
  value = [for ip in azurerm_public_ip.node : ip.ip_address]
}

output "members" {
  description = "The static member list every instance was started with (null with discovery_zone)."
  value       = local.discovery ? null : local.members
}

output "discovery" {
  description = "What every instance was started with instead of a member list (null without discovery_zone)."
  value       = local.discovery ? "dns:${local.discovery_name}" : null
}
