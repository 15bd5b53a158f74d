variable "name" {
  description = "Prefix of every resource."
  type        = string
  default     = "ballot"
}

variable "regions" {
  description = "One member per region; use an odd number (3 or 5) so a majority survives a region."
  type        = list(string)
  default     = ["westeurope", "northeurope", "uksouth"]
}

variable "vm_size" {
  type    = string
  default = "Standard_B2s"
}

variable "port" {
  description = "The one port of each instance: the service API and the consensus protocol."
  type        = number
  default     = 8080
}

variable "admin_username" {
  type    = string
  default = "ballot"
}

variable "ssh_public_key" {
  type = string
}

variable "admin_cidr" {
  description = "Where SSH is allowed from."
  type        = string
}

variable "client_cidrs" {
  description = "Who may call the service besides the members themselves."
  type        = list(string)
  default     = []
}

variable "ballot_version" {
  description = "The ballot npm package version to install."
  type        = string
  default     = "0.1.0"
}

variable "heartbeat_interval_ms" {
  description = "About the RTT between the farthest members."
  type        = number
  default     = 100
}

variable "election_timeout_ms" {
  description = "About ten times the RTT between the farthest members."
  type        = number
  default     = 1000
}

variable "discovery_zone" {
  description = "A private DNS zone (e.g. ballot.internal) through which the VMs find each other, instead of a static member list; the VMs then run `ballot start --discovery`. Empty: the stateful-service example with a static list."
  type        = string
  default     = ""
  validation {
    condition     = var.discovery_zone == "" || can(regex("^([a-z0-9]([a-z0-9-]*[a-z0-9])?\\.)+[a-z]{2,}$", var.discovery_zone))
    error_message = "discovery_zone must be a DNS zone name such as ballot.internal, or empty."
  }
}

variable "discovery_record" {
  description = "The name in discovery_zone that holds one A record per VM."
  type        = string
  default     = "members"
}
