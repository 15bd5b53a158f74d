# One VM per region running the Ballot stateful service (examples/stateful-service), as in the
# seed article, without provisioners: each VM gets a static public IP first, and every VM's
# cloud-init carries the member list made from all of them.
#
#   terraform init && terraform apply -var 'ssh_public_key=...' -var 'admin_cidr=203.0.113.4/32'
#   curl http://$(terraform output -json public_ips | jq -r '.[0]'):8080/1
#
# With -var 'discovery_zone=ballot.internal' there is no member list: a private DNS zone linked to
# every region's network holds one A record per VM under members.ballot.internal, and each VM runs
# `ballot start --discovery dns:members.ballot.internal --bootstrap-expect <regions>` (the Ballot
# KV API; the stateful-service example embeds RaftNode, which takes a static list). Adding a region
# later adds its record, and the new VM joins the running cluster.
#
#   curl http://$(terraform output -json public_ips | jq -r '.[0]'):8080/v1/cluster

terraform {
  required_version = ">= 1.5"
  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = "~> 3.100"
    }
  }
}

provider "azurerm" {
  features {}
}

locals {
  ids       = [for i, _ in var.regions : "n${i + 1}"]
  members   = join(",", [for i, ip in azurerm_public_ip.node : "n${i + 1}=http://${ip.ip_address}:${var.port}"])
  discovery = var.discovery_zone != ""
  # The name every VM resolves; its A records are the VMs' public IPs (the members talk over them).
  discovery_name = "${var.discovery_record}.${var.discovery_zone}"
}

resource "azurerm_resource_group" "ballot" {
  name     = var.name
  location = var.regions[0]
}

resource "azurerm_virtual_network" "node" {
  count               = length(var.regions)
  name                = "${var.name}-vnet-${count.index + 1}"
  location            = var.regions[count.index]
  resource_group_name = azurerm_resource_group.ballot.name
  address_space       = ["10.${count.index + 10}.0.0/16"]
}

resource "azurerm_subnet" "node" {
  count                = length(var.regions)
  name                 = "nodes"
  resource_group_name  = azurerm_resource_group.ballot.name
  virtual_network_name = azurerm_virtual_network.node[count.index].name
  address_prefixes     = ["10.${count.index + 10}.1.0/24"]
}

resource "azurerm_public_ip" "node" {
  count               = length(var.regions)
  name                = "${var.name}-ip-${count.index + 1}"
  location            = var.regions[count.index]
  resource_group_name = azurerm_resource_group.ballot.name
  allocation_method   = "Static"
  sku                 = "Standard"
}

# A private zone answers only inside the networks linked to it: every region's network is.
resource "azurerm_private_dns_zone" "members" {
  count               = local.discovery ? 1 : 0
  name                = var.discovery_zone
  resource_group_name = azurerm_resource_group.ballot.name
}

resource "azurerm_private_dns_zone_virtual_network_link" "members" {
  count                 = local.discovery ? length(var.regions) : 0
  name                  = "${var.name}-dns-${count.index + 1}"
  resource_group_name   = azurerm_resource_group.ballot.name
  private_dns_zone_name = azurerm_private_dns_zone.members[0].name
  virtual_network_id    = azurerm_virtual_network.node[count.index].id
}

# One A record per VM under one name: what `--discovery dns:` reads.
resource "azurerm_private_dns_a_record" "members" {
  count               = local.discovery ? 1 : 0
  name                = var.discovery_record
  zone_name           = azurerm_private_dns_zone.members[0].name
  resource_group_name = azurerm_resource_group.ballot.name
  ttl                 = 30
  records             = [for ip in azurerm_public_ip.node : ip.ip_address]
}

resource "azurerm_network_security_group" "node" {
  count               = length(var.regions)
  name                = "${var.name}-nsg-${count.index + 1}"
  location            = var.regions[count.index]
  resource_group_name = azurerm_resource_group.ballot.name

  # The service and the consensus protocol share one port: peers and clients.
  security_rule {
    name                       = "service"
    priority                   = 100
    direction                  = "Inbound"
    access                     = "Allow"
    protocol                   = "Tcp"
    source_port_range          = "*"
    destination_port_range     = tostring(var.port)
    source_address_prefixes    = concat([for ip in azurerm_public_ip.node : ip.ip_address], var.client_cidrs)
    destination_address_prefix = "*"
  }
  security_rule {
    name                       = "ssh"
    priority                   = 110
    direction                  = "Inbound"
    access                     = "Allow"
    protocol                   = "Tcp"
    source_port_range          = "*"
    destination_port_range     = "22"
    source_address_prefix      = var.admin_cidr
    destination_address_prefix = "*"
  }
}

resource "azurerm_network_interface" "node" {
  count               = length(var.regions)
  name                = "${var.name}-nic-${count.index + 1}"
  location            = var.regions[count.index]
  resource_group_name = azurerm_resource_group.ballot.name
  ip_configuration {
    name                          = "primary"
    subnet_id                     = azurerm_subnet.node[count.index].id
    private_ip_address_allocation = "Dynamic"
    public_ip_address_id          = azurerm_public_ip.node[count.index].id
  }
}

resource "azurerm_network_interface_security_group_association" "node" {
  count                     = length(var.regions)
  network_interface_id      = azurerm_network_interface.node[count.index].id
  network_security_group_id = azurerm_network_security_group.node[count.index].id
}

resource "azurerm_linux_virtual_machine" "node" {
  count                 = length(var.regions)
  name                  = "${var.name}-${local.ids[count.index]}"
  location              = var.regions[count.index]
  resource_group_name   = azurerm_resource_group.ballot.name
  size                  = var.vm_size
  admin_username        = var.admin_username
  network_interface_ids = [azurerm_network_interface.node[count.index].id]

  admin_ssh_key {
    username   = var.admin_username
    public_key = var.ssh_public_key
  }
  os_disk {
    caching              = "ReadWrite"
    storage_account_type = "Premium_LRS" # the WAL fdatasyncs every batch: disk latency is write latency
  }
  source_image_reference {
    publisher = "Debian"
    offer     = "debian-12"
    sku       = "12-gen2"
    version   = "latest"
  }
  custom_data = base64encode(local.discovery ? templatefile("${path.module}/cloud-init-discovery.yaml.tftpl", {
    id             = local.ids[count.index]
    advertise      = "http://${azurerm_public_ip.node[count.index].ip_address}:${var.port}"
    discovery      = "dns:${local.discovery_name}"
    expect         = length(var.regions)
    port           = var.port
    ballot_version = var.ballot_version
    heartbeat_ms   = var.heartbeat_interval_ms
    election_ms    = var.election_timeout_ms
    unit           = file("${path.module}/../systemd/ballot@.service")
    }) : templatefile("${path.module}/cloud-init.yaml.tftpl", {
    id             = local.ids[count.index]
    members        = local.members
    port           = var.port
    ballot_version = var.ballot_version
    heartbeat_ms   = var.heartbeat_interval_ms
    election_ms    = var.election_timeout_ms
    unit           = file("${path.module}/../systemd/stateful-service@.service")
  }))

  # The records must answer before the first VM looks for the others (it retries, but need not).
  depends_on = [azurerm_private_dns_a_record.members, azurerm_private_dns_zone_virtual_network_link.members]
}
